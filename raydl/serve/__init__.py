"""The serve stage: a run's Predictor behind a Ray Serve application (``raydl serve RUN_DIR``).

``app`` (the deployment and its FastAPI ingress), ``protocol`` (request and response
models, Open Inference Protocol v2), ``config`` (the Serve config file and RayService
application), ``metrics``, ``drift``, ``router`` (A/B and shadow). This package imports
nothing heavy itself: ``raydl k8s render`` reads ``config`` without Ray Serve.
"""
