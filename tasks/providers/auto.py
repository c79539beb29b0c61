"""Pick the video and image providers from the settings, like uvicorn's `auto.py`."""

from __future__ import annotations

import importlib
import importlib.util
import logging
from pathlib import Path

from common.config import Settings
from tasks.providers.base import VideoProvider
from tasks.providers.images import ImageProvider
from tasks.providers.local import LocalRenderer
from tasks.providers.local_image import LocalImageRenderer

log = logging.getLogger(__name__)

_VEO_MODULE = "tasks.providers.veo"


def make_provider(settings: Settings) -> VideoProvider:
    """Veo when GEMINI_API_KEY or CANVASFLOW_VEO_PROJECT is set, else the local renderer.

    The Veo module is imported lazily so the offline default never loads
    google-genai; it must offer `VeoProvider.from_settings(settings)`.
    """
    if settings.gemini_api_key or settings.veo_project:
        if importlib.util.find_spec(_VEO_MODULE) is not None:
            veo = importlib.import_module(_VEO_MODULE)
            provider: VideoProvider = veo.VeoProvider.from_settings(settings)
            return provider
        log.warning("Veo is configured but %s is missing: rendering locally", _VEO_MODULE)
    work_dir = Path(settings.data_dir) / "renders"
    work_dir.mkdir(parents=True, exist_ok=True)
    return LocalRenderer(work_dir=work_dir, model=settings.veo_model)


_GEMINI_IMAGE_MODULE = "tasks.providers.gemini_image"


def make_image_provider(settings: Settings) -> ImageProvider:
    """Gemini's image model when Google credentials are set (as for Veo), else a local one."""
    if settings.gemini_api_key or settings.veo_project:
        gemini = importlib.import_module(_GEMINI_IMAGE_MODULE)
        provider: ImageProvider = gemini.GeminiImageProvider.from_settings(settings)
        return provider
    return LocalImageRenderer(model=settings.image_model)
