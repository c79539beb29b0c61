"""The price table and the budget settings: defaults, overrides, and the errors bad values give."""

from __future__ import annotations

import pytest

from common.config import ConfigError, load_settings
from common.prices import DEFAULT_PRICES, PriceTable, UnknownPrice, parse_prices
from tasks.providers.capabilities import MODELS
from tasks.providers.images import IMAGE_MODELS


def test_every_model_canvasflow_knows_has_a_price() -> None:
    """Each Veo and image model of the capability tables is in the default price table."""
    table = parse_prices(None)
    for model in MODELS:
        assert table.price_of("veo", model).per_second > 0, model
    for model in IMAGE_MODELS:
        assert table.price_of("gemini", model).per_image > 0, model
    assert table.price_of("local", "anything").per_second == 0


def test_costs_follow_seconds_videos_audio_and_size() -> None:
    """A clip costs its seconds times its videos at the audio or silent rate; 4K images cost more."""
    table = parse_prices(None)
    silent = table.video_micros("veo", "veo-3.1-generate-001", seconds=4, videos=1, audio=False)
    loud = table.video_micros("veo", "veo-3.1-generate-001", seconds=8, videos=2, audio=True)
    assert (silent, loud) == (800_000, 6_400_000)
    pro = "gemini-3-pro-image-preview"
    assert table.image_micros("gemini", pro, images=2, size="1K") == 268_000
    assert table.image_micros("gemini", pro, images=1, size="4K") == 240_000
    with pytest.raises(UnknownPrice, match="CANVASFLOW_PRICES"):
        table.price_of("veo", "veo-9")


def test_overrides_replace_one_entry_and_keep_the_rest(monkeypatch: pytest.MonkeyPatch) -> None:
    """CANVASFLOW_PRICES overrides the entries it names (the local renderer can cost something)."""
    monkeypatch.setenv(
        "CANVASFLOW_PRICES",
        '{"local/*": {"per_second": 0.5}, "veo/veo-3.1-generate-001": {"per_second": 0.1}}',
    )
    table: PriceTable = load_settings().prices
    assert table.video_micros("local", "veo-3.1-generate-001", seconds=4, videos=1, audio=True)
    assert table.price_of("local", "x").per_second == 0.5
    assert table.price_of("veo", "veo-3.1-generate-001").per_second_audio is None
    assert len(table.prices) == len(DEFAULT_PRICES)


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ('{"veo/veo-3.1-generate-001": {"per_second": -0.4}}', "0 or more"),
        ('{"veo/veo-3.1-generate-001": {"per_second": 40000}}', "a typo"),
        ('{"veo/veo-3.1-generate-001": {"per_second": "0.40"}}', "must be a number"),
        ('{"veo/veo-3.1-generate-001": {"per_second": true}}', "must be a number"),
        ('{"veo/veo-3.1-generate-001": {"per_second": NaN}}', "not JSON"),
        ('{"veo/veo-3.1-generate-001": {"per_minute": 1}}', "unknown field"),
        ('{"veo": {"per_second": 1}}', "provider/model"),
        ('{"veo/x": 0.4}', "an object of prices"),
        ("[1, 2]", "JSON object"),
        ("{not json", "not JSON"),
    ],
)
def test_bad_prices_are_a_clear_config_error(
    monkeypatch: pytest.MonkeyPatch, raw: str, says: str
) -> None:
    """Negative, absurd, non-numeric or malformed prices stop the process with what is wrong."""
    monkeypatch.setenv("CANVASFLOW_PRICES", raw)
    with pytest.raises(ConfigError, match="CANVASFLOW_PRICES") as caught:
        load_settings()
    assert says in str(caught.value)


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("CANVASFLOW_BUDGET", "-5", "0 or more"),
        ("CANVASFLOW_BUDGET", "ten", "a number"),
        ("CANVASFLOW_BUDGET", "inf", "0 or more"),
        ("CANVASFLOW_BUDGET_PERIOD", "fortnight", "day, week, month"),
    ],
)
def test_bad_budget_settings_are_a_clear_config_error(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, says: str
) -> None:
    """A budget that is not an amount, or a period canvasflow does not know, stops the process."""
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=name) as caught:
        load_settings()
    assert says in str(caught.value)


def test_budget_settings_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """CANVASFLOW_BUDGET is an amount in the table's currency; unset means unlimited."""
    assert load_settings().budget_micros is None
    monkeypatch.setenv("CANVASFLOW_BUDGET", "12.5")
    monkeypatch.setenv("CANVASFLOW_BUDGET_PERIOD", "Week")
    settings = load_settings()
    assert (settings.budget_micros, settings.budget_period) == (12_500_000, "week")
