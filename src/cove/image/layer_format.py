"""Conventions shared by layer extraction (`cove.image.layer_extract`) and diffing
(`cove.image.layer_diff`): whiteout names, overlay xattrs, how files are opened.
"""

from __future__ import annotations

import os

WHITEOUT_PREFIX = ".wh."
WHITEOUT_META_PREFIX = ".wh..wh."
WHITEOUT_OPAQUE = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"
_OVERLAY_XATTR_PREFIXES = ("trusted.overlay.", "user.overlay.")
_ALLOWED_XATTR_PREFIXES = ("user.", "security.", "trusted.", "system.posix_acl_")
_PAX_XATTR = "SCHILY.xattr."

_TAR_BUFSIZE = 64 * 1024

_O_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_O_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
