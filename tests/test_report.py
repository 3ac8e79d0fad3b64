"""Report: parsing of stage outputs and the comparison table."""

from pathlib import Path

from acoustic_kd.report import SystemRow, collect_rows, format_table, parse_wer_file, write_results


def _decode_dir(root: Path, name: str, wer: str, acc: str | None) -> None:
    d = root / "decode" / name
    d.mkdir(parents=True)
    (d / "wer").write_text(wer)
    if acc is not None:
        (d / "frame_acc").write_text(acc + "\n")


def test_parse_wer_file(tmp_path):
    p = tmp_path / "wer"
    p.write_text("%WER 12.50 [ 5 / 40, 1 ins, 2 del, 2 sub ] [PARTIAL]\n%SER 20.00 [ 2 / 10 ]\n")
    assert parse_wer_file(p) == (12.5, True)
    p.write_text("%WER 0.00 [ 0 / 40, 0 ins, 0 del, 0 sub ]\n")
    assert parse_wer_file(p) == (0.0, False)
    p.write_text("garbage\n")
    assert parse_wer_file(p) is None
    assert parse_wer_file(tmp_path / "absent") is None


def test_collect_rows_orders_systems_and_reads_values(tmp_path):
    for name, w, a in [("control_test", "%WER 10.00 [ 4 / 40, 0 ins, 0 del, 4 sub ]", "80.5"),
                       ("m1_test", "%WER 7.50 [ 3 / 40, 0 ins, 1 del, 2 sub ]", "82.0"),
                       ("ensemble_test", "%WER 5.00 [ 2 / 40, 0 ins, 0 del, 2 sub ]", "84.25"),
                       ("student_kd_test", "%WER 5.00 [ 2 / 40, 1 ins, 0 del, 1 sub ]", "83.9")]:
        _decode_dir(tmp_path, name, w, a)
    (tmp_path / "decode" / "student_kd_test" / "cer").write_text(
        "%CER 2.50 [ 5 / 200, 1 ins, 2 del, 2 sub ]\n%SER 10.00 [ 1 / 10 ]\n")
    rows = collect_rows(tmp_path, num_members=1, sets=["dev", "test"])
    assert [r.name for r in rows] == ["control (hard targets)", "member 1", "ensemble (1 members)",
                                      "distilled student"]
    assert [r.role for r in rows] == ["control", "member", "ensemble", "student"]
    assert rows[2].wer["test"] == 5.0 and rows[2].frame_acc["test"] == 84.25
    assert rows[0].wer["dev"] is None
    table = format_table(rows, ["dev", "test"])
    assert "| distilled student | – | 83.90 | – | 5.00 | – | 2.50 |" in table
    assert "| CER dev % | CER test % |" in table and rows[3].cer["test"] == 2.5


def test_an_experiment_made_before_the_rename_finds_its_control_as_student_hard(tmp_path):
    _decode_dir(tmp_path, "student_hard_test", "%WER 10.00 [ 4 / 40, 0 ins, 0 del, 4 sub ]", "80.5")
    _decode_dir(tmp_path, "ensemble_test", "%WER 5.00 [ 2 / 40, 0 ins, 0 del, 2 sub ]", "84.25")
    rows = collect_rows(tmp_path, num_members=1, sets=["test"])
    assert [(r.role, r.wer["test"]) for r in rows] == [("control", 10.0), ("ensemble", 5.0)]
    _decode_dir(tmp_path, "control_test", "%WER 9.00 [ 4 / 40, 0 ins, 0 del, 4 sub ]", "80.5")
    assert collect_rows(tmp_path, num_members=1, sets=["test"])[0].wer["test"] == 9.0


def test_write_results_makes_markdown_and_plots(tmp_path):
    import matplotlib.image as mpimg
    import numpy as np

    rows = [SystemRow("a", {"test": 50.0}, {"test": 10.0}, {}, 1000, 900, 0.01),
            SystemRow("b", {"test": 60.0}, {"test": 8.0}, {}, 4000, 3900, 0.02)]
    curves = {"a": [{"epoch": 1, "dev_acc": 0.4}, {"epoch": 2, "dev_acc": 0.5}]}
    table = write_results(rows, ["test"], tmp_path / "full", "T", "notes here", curves)
    md = (tmp_path / "full" / "RESULTS.md").read_text()
    assert table in md and "notes here" in md
    # the same plots without any value: every plot of the full run must differ from its empty
    # twin, so a plot that reads a wrong key (and draws nothing) fails, not only a missing file
    empty = [SystemRow(r.name, {}, {}, {}, r.params, r.macs_per_frame, r.rtf) for r in rows]
    write_results(empty, ["test"], tmp_path / "empty", "T", "", {"a": [{"epoch": 1}]})
    for png in ("training_curves.png", "frame_acc_vs_params.png", "wer.png"):
        full, blank = (mpimg.imread(tmp_path / d / "plots" / png) for d in ("full", "empty"))
        assert full.shape == blank.shape == (400, 600, 4), (png, full.shape)   # 6x4 in at 100 dpi
        assert np.abs(full - blank).sum() > 100, f"{png}: the data drew nothing"


def test_kept_share_and_seed_summaries_in_results(tmp_path):
    from acoustic_kd.report import kept_share

    rows = [SystemRow("the hard-target one", {"test": 50.0}, {"test": 20.0}, role="control"),
            SystemRow("ensemble (5 members)", {"test": 54.0}, {"test": 18.0}, role="ensemble"),
            SystemRow("distilled student", {"test": 53.0}, {"test": 17.0}, role="student")]
    share = kept_share(rows, ["test"])
    assert "frame accuracy test 0.75" in share and "WER test 1.50" in share
    # no gain of the ensemble: no share is made up
    flat = [rows[0], SystemRow("ensemble (5 members)", {"test": 50.0}, {"test": 21.0},
                               role="ensemble"), rows[2]]
    assert kept_share(flat, ["test"]).count("n/a (no ensemble gain)") == 2
    assert kept_share(rows[:2], ["test"]) == ""
    (tmp_path / "seeds").mkdir()
    (tmp_path / "seeds" / "SEEDS.md").write_text("Seeds 1001 1002: mean 53.1\n")
    table = write_results(rows, ["test"], tmp_path, "T")
    md = (tmp_path / "RESULTS.md").read_text()
    assert share in table and "## Seeds" in md and "### seeds" in md and "mean 53.1" in md


def test_gmm_rows_and_every_systems_wer_over_the_gmms(tmp_path):
    """GMM decodes (exp/decode/gmm_<pass>_<set>) come first, sized from exp/<pass>/final.gmm.npz;
    each system's WER is divided by the lowest GMM WER of the set, and the line under the table
    names that GMM."""
    import numpy as np

    from acoustic_kd.report import ReportJob

    wer = "%WER {:.2f} [ 1 / 40, 0 ins, 0 del, 1 sub ]"
    for name, w in [("gmm_tri2_test", 20.0), ("gmm_tri3_test", 16.0), ("gmm_tri3_dev", 25.0),
                    ("control_test", 12.0), ("control_dev", 12.5), ("ensemble_test", 8.0)]:
        _decode_dir(tmp_path, name, wer.format(w), None)
    (tmp_path / "tri3").mkdir()
    np.savez(tmp_path / "tri3" / "final.gmm.npz", means=np.zeros((60, 20)), vars=np.ones((60, 20)))
    rows = collect_rows(tmp_path, num_members=1, sets=["dev", "test"])
    assert [(r.name, r.role) for r in rows] == [("GMM-HMM tri2", "gmm"), ("GMM-HMM tri3", "gmm"),
                                                 ("control (hard targets)", "control"),
                                                 ("ensemble (1 members)", "ensemble")]
    assert rows[1].params == 60 * 41 and rows[1].macs_per_frame == 60 * 40 and rows[0].params is None
    table = format_table(rows, ["dev", "test"])
    assert "| WER dev % | WER test % | WER dev ÷ GMM | WER test ÷ GMM | CER dev % |" in table
    assert "| GMM-HMM tri2 | – | – | – | 20.00 | – | 1.25 |" in table
    assert "| GMM-HMM tri3 | – | – | 25.00 | 16.00 | 1.00 | 1.00 | – | – | 2.5k | 2.4k |" in table
    assert "| control (hard targets) | – | – | 12.50 | 12.00 | 0.50 | 0.75 |" in table
    assert "| ensemble (1 members) | – | – | – | 8.00 | – | 0.50 |" in table
    text = ReportJob(str(tmp_path), num_members=1).run()
    note = ("WER ÷ GMM: each system's WER over the GMM's on the same set and graph "
            "(dev: GMM-HMM tri3, 25.00 %; test: GMM-HMM tri3, 16.00 %); below 1 the system beats "
            "the GMM.")
    assert table in text and note in text and note in (tmp_path / "RESULTS.md").read_text()
    assert "÷ GMM" not in format_table(rows[2:], ["dev", "test"])     # no GMM: no ratio columns
