"""Running a job spec on a Ray cluster: submission from a laptop and KubeRay manifests."""
