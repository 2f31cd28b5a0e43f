"""Where a stack's state is shared: a folder (path or file:// URL) or an S3 bucket (s3://bucket/prefix) for the local
engine, a Pulumi backend URL for the docker and kubernetes targets, whose state is Pulumi's."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote, urlparse

from mlspec.spec.capabilities import Target

STATE_ENV = "MLSPEC_STATE"
# The backends Pulumi's own CLI reads from PULUMI_BACKEND_URL; it locks them itself.
PULUMI_SCHEMES = ("file", "s3", "gs", "azblob", "https", "http")
LOCAL_SCHEMES = ("file", "s3")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
# S3's rules for a bucket name: 3 to 63 lowercase letters, digits, dots and hyphens, a letter or digit at each end.
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_IP_ADDRESS = re.compile(r"^\d+\.\d+\.\d+\.\d+$")


def scheme_of(location: str) -> str | None:
    """The URL scheme of a location, or None for a plain path."""
    match = _SCHEME.match(location)
    return match.group(1).lower() if match else None


def location_problem(location: str, target: Target) -> str | None:
    """Why `location` cannot hold the state of a `target` deployment, or None."""
    if not location.strip():
        return ("the state location is empty: write a folder, a file:// URL, an s3:// URL or (docker, kubernetes) a "
                "Pulumi backend URL")
    scheme = scheme_of(location)
    if scheme is None:
        return None
    if target == "local":
        if scheme not in LOCAL_SCHEMES:
            return (f"'{location}': the local target shares its state through a folder, written as a path or a "
                    "file:// URL (a mounted network share or volume), or through an S3 bucket (s3://bucket/prefix, "
                    f"also an S3-compatible store named by AWS_ENDPOINT_URL); {scheme}:// is not supported. Mount "
                    "the store as a folder, or use a docker or kubernetes stack, whose Pulumi backend reads "
                    f"{', '.join(s + '://' for s in PULUMI_SCHEMES if s != 'file')}")
        return _s3_url_problem(location) if scheme == "s3" else _file_url_problem(location)
    if scheme not in PULUMI_SCHEMES:
        return (f"'{location}' is not a Pulumi backend: write a folder, or a URL with one of "
                f"{', '.join(s + '://' for s in PULUMI_SCHEMES)}")
    return _file_url_problem(location) if scheme == "file" else None


def _file_url_problem(location: str) -> str | None:
    parsed = urlparse(location)
    if parsed.netloc not in ("", "localhost"):
        return (f"'{location}' names the host '{parsed.netloc}': a file:// URL is a folder of this machine "
                "(file:///mnt/share/mlspec); mount a remote share and name its folder")
    if not parsed.path:
        return f"'{location}' names no folder: write file:///absolute/folder"
    return None


def _s3_url_problem(location: str) -> str | None:
    parsed = urlparse(location)
    if parsed.query or parsed.fragment:
        return (f"'{location}': the local target reads the region, profile and endpoint from boto3's configuration "
                "(AWS_REGION, AWS_PROFILE, AWS_ENDPOINT_URL), not from the URL: write s3://bucket/prefix")
    bucket = parsed.netloc
    if not bucket:
        return f"'{location}' names no bucket: write s3://bucket/prefix"
    if not _BUCKET.match(bucket) or ".." in bucket or _IP_ADDRESS.match(bucket):
        return (f"'{location}': '{bucket}' is not an S3 bucket name (3 to 63 lowercase letters, digits, dots and "
                "hyphens, beginning and ending with a letter or digit)")
    if "//" in parsed.path.strip("/"):
        return f"'{location}' has an empty folder in its prefix ('//'): write s3://{bucket}/prefix"
    return None


def s3_bucket_and_prefix(location: str) -> tuple[str, str]:
    """The bucket and the key prefix (without slashes at its ends) of a (checked) s3:// location."""
    parsed = urlparse(location)
    return parsed.netloc, parsed.path.strip("/")


def resolved(location: str, base: Path) -> str:
    """The location with a relative path (or file: URL path) made absolute from `base`; other URLs unchanged."""
    scheme = scheme_of(location)
    if scheme is None:
        return str((base / Path(location).expanduser()).resolve())
    if scheme == "file":
        return str((base / unquote(urlparse(location).path)).resolve())
    return location


def folder_of(location: str) -> Path:
    """The folder a (checked) path or file:// location names."""
    if scheme_of(location) == "file":
        return Path(unquote(urlparse(location).path))
    return Path(location).expanduser()


def backend_url(location: str) -> str:
    """PULUMI_BACKEND_URL for a (checked, resolved) location: a folder becomes its file:// URL."""
    scheme = scheme_of(location)
    if scheme is None or scheme == "file":
        return folder_of(location).resolve().as_uri()
    return location
