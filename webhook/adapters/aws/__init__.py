"""AWS adapters: pullguard's own AWS access, the ECR checker and the EKS node resolver.

* ``clients``  — boto3 clients with per-service endpoints (``aws.endpoints``), bounded retries and
  timeouts; boto3 is imported on first use only, so the CLI and core start without it;
* ``errors``   — the one place botocore exceptions become ``core.errors.CloudError``;
* ``policies`` — reading a role's identity policies, a repository policy, pull-through cache rules;
* ``simulate`` — the optional ``aws.policyEvaluation: simulate`` mode (iam:SimulatePrincipalPolicy);
* ``ecr_checker`` — the engine's ``NodeIdentityChecker`` for ``ecr`` attempts;
* ``eks_nodes`` — the ``NodeIdentityResolver``: providerID → EC2 → instance profile → role, plus
  Fargate profiles.

Nothing from boto3/botocore escapes this package.
"""

from webhook.adapters.aws.clients import AwsClients, AwsOptions
from webhook.adapters.aws.ecr_checker import EcrChecker, EcrOptions
from webhook.adapters.aws.eks_nodes import EksNodeResolver

__all__ = ["AwsClients", "AwsOptions", "EcrChecker", "EcrOptions", "EksNodeResolver"]
