"""The price table: what a second of video or one image costs, per provider and model.

Money is counted in integer micro-units of the currency (1 USD = 1,000,000) so
that sums in Postgres are exact; `to_amount` turns them into the decimal
amounts clients see.

The defaults are Google's published list prices for the paid tier, read on
2026-12-02 from https://ai.google.dev/gemini-api/docs/pricing (Veo, Gemini
image) and https://cloud.google.com/vertex-ai/generative-ai/pricing (Veo on
Vertex AI, the same per-second figures). That page could only be read here
through copies that quote it (e.g. the Gemini forum thread
https://discuss.ai.google.dev/t/issue-with-url-context-tooling/101173 for
$0.039 an image of gemini-2.5-flash-image): check them against your own
contract and override them with CANVASFLOW_PRICES (docs/deploy.md).

This module is a leaf: it imports nothing of canvasflow.
"""

from __future__ import annotations

import math
from typing import Any

import msgspec

#: the currency of every price and budget
CURRENCY = "USD"
MICROS = 1_000_000
#: a price above this (per second or per image) is taken for a typo, not a price
MAX_UNIT_PRICE = 1000.0
#: the model key that stands for every model of a provider
ANY_MODEL = "*"
#: seconds an extension generates (Veo adds 7 s to the clip it extends)
EXTENSION_SECONDS = 7


class Price(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The list price of one provider's model, in CURRENCY."""

    #: a second of video without audio
    per_second: float = 0.0
    #: a second of video with generated audio (None: the same as per_second)
    per_second_audio: float | None = None
    #: one image up to 2K (1K and 2K cost the same)
    per_image: float = 0.0
    #: one 4K image (None: the same as per_image)
    per_image_4k: float | None = None


#: (provider, model) → price; `ANY_MODEL` matches every model of the provider
DEFAULT_PRICES: dict[tuple[str, str], Price] = {
    # Veo 3.1 and Veo 3 standard: $0.40/s with audio, $0.20/s video only
    ("veo", "veo-3.1-generate-001"): Price(per_second=0.20, per_second_audio=0.40),
    ("veo", "veo-3.1-generate-preview"): Price(per_second=0.20, per_second_audio=0.40),
    ("veo", "veo-3.0-generate-001"): Price(per_second=0.20, per_second_audio=0.40),
    # Veo 3.1 fast and Veo 3 fast: $0.15/s with audio, $0.10/s video only
    ("veo", "veo-3.1-fast-generate-001"): Price(per_second=0.10, per_second_audio=0.15),
    ("veo", "veo-3.1-fast-generate-preview"): Price(per_second=0.10, per_second_audio=0.15),
    ("veo", "veo-3.0-fast-generate-001"): Price(per_second=0.10, per_second_audio=0.15),
    # Veo 3.1 Lite: $0.05/s (720p; read from a reseller's copy of the list, not Google's page)
    ("veo", "veo-3.1-lite-generate-001"): Price(per_second=0.05),
    # Veo 2: $0.50/s, no audio
    ("veo", "veo-2.0-generate-001"): Price(per_second=0.50),
    # Gemini 2.5 Flash Image: 1290 output tokens at $30 per million = $0.039 an image
    ("gemini", "gemini-2.5-flash-image"): Price(per_image=0.039),
    # Gemini 3 Pro Image: $0.134 up to 2K, $0.24 at 4K
    ("gemini", "gemini-3-pro-image-preview"): Price(per_image=0.134, per_image_4k=0.24),
    # the local renderers (video and image) run on our own CPU
    ("local", ANY_MODEL): Price(),
}


class UnknownPrice(Exception):
    """No price is known for a provider's model: nothing is generated without one."""


def _micros(amount: float) -> int:
    return round(amount * MICROS)


def to_amount(micros: int) -> float:
    """Micro-units as the decimal amount clients see (6 places at most)."""
    return round(micros / MICROS, 6)


def to_micros(amount: float) -> int:
    """A decimal amount as micro-units."""
    return _micros(amount)


class PriceTable(msgspec.Struct, frozen=True):
    """The defaults with the settings' overrides applied."""

    prices: dict[str, Price]

    @staticmethod
    def key(provider: str, model: str) -> str:
        """How a (provider, model) is named in the table and in CANVASFLOW_PRICES."""
        return f"{provider}/{model}"

    def price_of(self, provider: str, model: str) -> Price:
        """The model's price, else the provider's `*`; UnknownPrice when neither is listed."""
        for key in (self.key(provider, model), self.key(provider, ANY_MODEL)):
            price = self.prices.get(key)
            if price is not None:
                return price
        raise UnknownPrice(
            f"no price for {provider} model {model!r}: add {self.key(provider, model)!r} "
            "to CANVASFLOW_PRICES"
        )

    def video_micros(
        self, provider: str, model: str, *, seconds: int, videos: int, audio: bool
    ) -> int:
        """What `videos` clips of `seconds` each cost."""
        price = self.price_of(provider, model)
        per_second = price.per_second_audio if audio else None
        per_second = price.per_second if per_second is None else per_second
        return _micros(per_second) * max(0, seconds) * max(0, videos)

    def image_micros(self, provider: str, model: str, *, images: int, size: str) -> int:
        """What `images` images of `size` ("1K", "2K", "4K") cost."""
        price = self.price_of(provider, model)
        each = price.per_image_4k if size == "4K" else None
        each = price.per_image if each is None else each
        return _micros(each) * max(0, images)


#: fields that may be null in an override: "as the plain price"
_OPTIONAL = ("per_second_audio", "per_image_4k")


def _check_amount(where: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{where} must be a number, got {value!r}")
    amount = float(value)
    if not math.isfinite(amount) or amount < 0:
        raise ValueError(f"{where} must be 0 or more, got {value!r}")
    if amount > MAX_UNIT_PRICE:
        raise ValueError(
            f"{where} is {amount:g} {CURRENCY}, above the {MAX_UNIT_PRICE:g} any unit could "
            "cost: a typo?"
        )
    return amount


def parse_prices(raw: str | None) -> PriceTable:
    """The default table with the JSON overrides `raw` applied; ValueError says what is wrong.

    `raw` is an object of `"provider/model"` (or `"provider/*"`) to an object of
    `per_second`, `per_second_audio`, `per_image`, `per_image_4k`, e.g.
    `{"veo/veo-3.1-generate-001": {"per_second": 0.2, "per_second_audio": 0.4}}`.
    """
    prices = {PriceTable.key(p, m): price for (p, m), price in DEFAULT_PRICES.items()}
    if not raw:
        return PriceTable(prices)
    try:
        overrides = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise ValueError(f"is not JSON: {exc}") from None
    if not isinstance(overrides, dict):
        raise ValueError('must be a JSON object of "provider/model" to prices')
    for key, entry in overrides.items():
        provider, _, model = key.partition("/")
        if not provider or not model:
            raise ValueError(f'key {key!r} must be "provider/model" or "provider/*"')
        if not isinstance(entry, dict):
            raise ValueError(f"{key} must be an object of prices, got {entry!r}")
        unknown = set(entry) - set(Price.__struct_fields__)
        if unknown:
            raise ValueError(
                f"{key} has unknown field(s) {sorted(unknown)}; "
                f"known: {list(Price.__struct_fields__)}"
            )
        checked = {
            name: None if v is None and name in _OPTIONAL else _check_amount(f"{key}.{name}", v)
            for name, v in entry.items()
        }
        prices[key] = msgspec.convert(checked, Price)
    return PriceTable(prices)
