"""The google-genai client Veo and Gemini's image models share: Vertex AI mode, always.

With CANVASFLOW_VEO_PROJECT the client runs in that project with Application
Default Credentials; otherwise with GEMINI_API_KEY (Vertex AI express mode).
"""

from __future__ import annotations

from google import genai
from google.genai import types

from common.config import ConfigError, Settings


def make_client(settings: Settings, base_url: str | None) -> genai.Client:
    """A Vertex AI client for the configured project or API key, at `base_url` if given."""
    http_options = types.HttpOptions(base_url=base_url) if base_url else None
    if settings.veo_project:
        return genai.Client(
            vertexai=True,
            project=settings.veo_project,
            location=settings.veo_location,
            http_options=http_options,
        )
    if settings.gemini_api_key:
        return genai.Client(
            vertexai=True, api_key=settings.gemini_api_key, http_options=http_options
        )
    raise ConfigError("Google's models need CANVASFLOW_VEO_PROJECT or GEMINI_API_KEY.")
