"""Reusable, real-process test infrastructure for pullguard.

Everything here starts genuine components on 127.0.0.1 (the Debian CNCF distribution registry, a
token server speaking the distribution token protocol, containerd driven through ``ctr``, skopeo) so
that tests assert against real wire behaviour instead of mocks. See
/work/shared/research/test-infrastructure.md for the observed behaviour these helpers rely on.
"""

from tests.infra.containerd import Containerd, ContainerdUnavailableError, PullResult
from tests.infra.images import PushedManifest, push_image, push_index, tag_exists
from tests.infra.registry import RegistryProcess, RegistryStartError
from tests.infra.tokenserver import TokenRequest, TokenServer

__all__ = [
    "Containerd",
    "ContainerdUnavailableError",
    "PullResult",
    "PushedManifest",
    "RegistryProcess",
    "RegistryStartError",
    "TokenRequest",
    "TokenServer",
    "push_image",
    "push_index",
    "tag_exists",
]
