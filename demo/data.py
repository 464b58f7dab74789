"""Real data for the demo: Seattle weather 2012-2015 from the vega_datasets package, split by time."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

COLD_MONTHS = (10, 11, 12, 1, 2, 3, 4)
WARM_MONTHS = (5, 6, 7, 8, 9)
SUMMER_BATCH_DATE = "2014-08-31"
# A year on: summer 2015 arrives one month a batch, scored at the month's end; its labels come later.
SUMMER_2015_BATCHES = {"2015-06-30": 6, "2015-07-31": 7, "2015-08-31": 8}


def seattle_weather() -> pd.DataFrame:
    from vega_datasets import data

    frame = data.seattle_weather()
    frame["date"] = pd.to_datetime(frame["date"]).dt.strftime("%Y-%m-%d")
    return frame


def _months(frame: pd.DataFrame, years: tuple[int, ...], months: tuple[int, ...]) -> pd.DataFrame:
    dates = pd.to_datetime(frame["date"])
    return frame[dates.dt.year.isin(years) & dates.dt.month.isin(months)]


def write_initial(folder: Path) -> dict[str, int]:
    """Training data of the first model: the cold months of 2012-2013, one file per season."""
    frame = seattle_weather()
    train = folder / "train"
    batches = folder / "batches"
    for path in (train, batches, folder / "labels"):
        path.mkdir(parents=True, exist_ok=True)
        for old in path.glob("*.csv"):
            old.unlink()
    cold = _months(frame, (2012, 2013), COLD_MONTHS)
    cold.to_csv(train / "2012-2013-cold.csv", index=False)
    summer = _months(frame, (2014,), (6, 7, 8))
    summer.to_csv(batches / f"{SUMMER_BATCH_DATE}.csv", index=False)
    return {"train_rows": len(cold), "batch_rows": len(summer)}


def land_summer_labels(folder: Path) -> int:
    """Labels for warm months arrive: the warm seasons of 2012-2014 join the training data."""
    warm = _months(seattle_weather(), (2012, 2013, 2014), WARM_MONTHS)
    warm.to_csv(folder / "train" / "2012-2014-warm.csv", index=False)
    return len(warm)


def write_2015_batches(folder: Path) -> dict[str, int]:
    """Summer 2015, one file a month: the measurements, with the weather not known yet (left blank)."""
    rows = {}
    for day, month in SUMMER_2015_BATCHES.items():
        batch = _months(seattle_weather(), (2015,), (month,)).assign(weather=None)
        batch.to_csv(folder / "batches" / f"{day}.csv", index=False)
        rows[day] = len(batch)
    return rows


def land_2015_labels(folder: Path, months: tuple[int, ...]) -> int:
    """The true weather of those 2015 months arrives: one label file (``date``, ``weather``)."""
    labels = _months(seattle_weather(), (2015,), months)[["date", "weather"]]
    labels.to_csv(folder / "labels" / f"2015-{'-'.join(f'{m:02d}' for m in months)}.csv", index=False)
    return len(labels)


def land_2015_training_rows(folder: Path) -> int:
    """The labelled summer-2015 rows join the training data, as the summer labels did before."""
    months = tuple(SUMMER_2015_BATCHES.values())
    labelled = _months(seattle_weather(), (2015,), months)
    labelled.to_csv(folder / "train" / "2015-summer.csv", index=False)
    return len(labelled)


def land_corrupted_batch(folder: Path) -> int:
    """A broken export: negative rain, a missing temperature, an unknown label."""
    frame = _months(seattle_weather(), (2015,), (1, 2)).copy()
    frame.loc[frame.index[:20], "precipitation"] = -3.0
    frame.loc[frame.index[20:30], "temp_max"] = None
    frame.loc[frame.index[30:35], "weather"] = "hail"
    frame.to_csv(folder / "train" / "2015-winter-export.csv", index=False)
    return len(frame)


def remove_corrupted_batch(folder: Path) -> None:
    (folder / "train" / "2015-winter-export.csv").unlink(missing_ok=True)
