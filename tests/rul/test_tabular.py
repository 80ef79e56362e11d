from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from twins.rul import HistoryFormatError, load_history_csv, load_model

from .conftest import pump_fleet
from .test_cmapss import run_cli


def write_fleet_csv(path: Path, units: int) -> None:
    with open(path, "w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["asset", "hours", "flow_m3h", "vib_rms", "serial_flag"])
        for unit, hist in pump_fleet(units).items():
            for i, t in enumerate(hist["time"]):
                out.writerow(
                    [
                        unit,
                        t,
                        hist["flow_m3h"][i],
                        hist["vib_rms"][i],
                        hist["serial_flag"][i],
                    ]
                )


def test_it_reads_generic_histories_from_csv(tmp_path: Path) -> None:
    path = tmp_path / "pumps.csv"
    write_fleet_csv(path, 3)
    data = load_history_csv(path, unit_col="asset", time_col="hours")
    fleet = pump_fleet(3)
    assert data.signals == ("flow_m3h", "vib_rms", "serial_flag")
    assert sorted(data.unit_ids.tolist()) == sorted(fleet)
    one = data.select_units(["pump-1"])
    np.testing.assert_allclose(
        one.select_signals(["vib_rms"])[:, 0], fleet["pump-1"]["vib_rms"]
    )
    assert one.rul()[0] == len(fleet["pump-1"]["time"]) - 1


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (
            ["unit,time,a", "u1,1,2.0", "u1,2"],
            "pumps.csv line 3: expected 3 columns, got 2",
        ),
        (
            ["unit,time,a", "u1,1,2.0", "u1,2,high"],
            "pumps.csv line 3: column 'a': not a number: 'high'",
        ),
        (["unit,time,a", "u1,1,2.0", "u1,1,3.0"], "repeated time"),
        (["unit,hour,a", "u1,1,2.0"], "pumps.csv line 1: no column 'time'"),
    ],
)
def test_it_rejects_bad_csv_naming_the_line(
    tmp_path: Path, rows: list[str], message: str
) -> None:
    path = tmp_path / "pumps.csv"
    path.write_text("\n".join(rows) + "\n")
    with pytest.raises(HistoryFormatError, match=message):
        load_history_csv(path)


def test_it_trains_from_a_csv_on_the_command_line(tmp_path: Path) -> None:
    path = tmp_path / "pumps.csv"
    write_fleet_csv(path, 20)
    out = tmp_path / "model"
    args = [
        "train",
        "--csv",
        str(path),
        "--unit-col",
        "asset",
        "--time-col",
        "hours",
        "--out",
        str(out),
    ]
    done = run_cli(*args, "--window", "20", "--cap", "100", "--trees", "10")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1])["engines"] >= 1
    predictor = load_model(out)
    assert set(predictor.signals) == {"flow_m3h", "vib_rms"}
    worn = predictor.predict(
        {"vib_rms": np.full(30, 8.0), "flow_m3h": np.full(30, 320.0)}
    )
    fresh = predictor.predict(
        {"vib_rms": np.full(30, 2.0), "flow_m3h": np.full(30, 400.0)}
    )
    assert worn.median < 30
    assert fresh.median > 80
