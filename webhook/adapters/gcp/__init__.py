"""Google Cloud: Artifact Registry / gcr.io pulls as a GKE node pool's service account.

``GcpChecker`` answers credential-provider attempts of ``provider.kind == "gcp"``;
``GkeNodeResolver`` maps GKE nodes to their node pool's service account and scopes; both share
one ``GoogleApis`` (pullguard's credentials and REST clients). Google library exceptions are
translated into ``core.errors.CloudError`` in ``_errors.py`` and go no further.
"""

from webhook.adapters.gcp.apis import GcpOptions, GoogleApis
from webhook.adapters.gcp.checker import GcpChecker
from webhook.adapters.gcp.gke import GkeCluster, GkeNodeResolver

__all__ = ["GcpChecker", "GcpOptions", "GkeCluster", "GkeNodeResolver", "GoogleApis"]
