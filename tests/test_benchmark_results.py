"""benchmarks/results.py: each run's section and headlines, and the README table built from them."""
from benchmarks import results


def test_record_replaces_its_section_and_rebuilds_the_readme_table(tmp_path, monkeypatch):
    monkeypatch.setattr(results, "RESULTS", str(tmp_path / "RESULTS.md"))
    readme = tmp_path / "README.md"
    layout_only = results.TABLE_START.replace("results table:", "results table (Layout):")
    readme.write_text(f"# Tool\n\n{layout_only}\n{results.TABLE_END}\n\n"
                      f"{results.TABLE_START}\nold row\n{results.TABLE_END}\n\nMore.\n")
    monkeypatch.setattr(results, "README", str(readme))
    monkeypatch.setattr(results, "commit", lambda: "abc1234")
    results.headline("layout, demo", "the map 0.37, openTSNE 0.36")
    results.record("Layout: demo", ["| a |", "| 1 |"], command="python -m benchmarks.bench_layout")
    results.headline("preprocess, 100M", "1 min 10 s | peak 2.7 GB")    # '|' cannot break the row
    results.record("Scale: 100M", ["table"], command="make scale")
    results.record("Layout: demo", ["| a |", "| 2 |"], command="python -m benchmarks.bench_layout")
    text = (tmp_path / "RESULTS.md").read_text()
    assert text.count("## Layout: demo") == 1 and "| 2 |" in text and "| 1 |" not in text
    # the rerun gave no headline: its row is gone; the Scale row comes first (README_ORDER)
    layout_table = readme.read_text().split(layout_only)[1].split(results.TABLE_END)[0]
    assert len(layout_table.strip().splitlines()) == 2, "Layout's run gave no headline"
    table = readme.read_text().split(results.TABLE_START)[1].split(results.TABLE_END)[0]
    rows = [line for line in table.strip().splitlines()[2:]]
    assert len(rows) == 1 and rows[0].startswith("| preprocess, 100M | 1 min 10 s / peak 2.7 GB |")
    assert "`abc1234`, " in rows[0] and rows[0].endswith(": `make scale` |")
    assert "load average" not in rows[0]
    assert readme.read_text().startswith("# Tool") and readme.read_text().endswith("More.\n")
    results.headline("layout, demo", "0.38")
    results.record("Layout: demo", ["| 3 |"], command="python -m benchmarks.bench_layout")
    layout_table = readme.read_text().split(layout_only)[1].split(results.TABLE_END)[0]
    assert "| layout, demo | 0.38 |" in layout_table and "preprocess" not in layout_table
    table = readme.read_text().split(results.TABLE_START)[1].split(results.TABLE_END)[0]
    assert "layout" not in table, "a section with a table of its own is not repeated"
