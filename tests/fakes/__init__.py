"""Fakes of the remote services (Veo, GCS), served on loopback and driven through the real SDKs."""
