"""A result table as an HTML page the report shows in place (Snakemake's report only offers a CSV
for download): pandas' ``DataFrame.to_html``, no hand-written table markup.

Why: a reader of the report must be able to read ``primary.csv`` and Tables 3-5 where they are
listed, not download and open them elsewhere. The CSV stays the file of record (the page names it).
"""

from __future__ import annotations

import html

STYLE = """
body { font-family: system-ui, sans-serif; font-size: 13px; margin: 0.8rem; color: #222; }
table { border-collapse: collapse; }
th, td { border: 1px solid #ccc; padding: 2px 6px; text-align: right; white-space: nowrap; }
th { background: #eef3f8; position: sticky; top: 0; }
td.text, th.text { text-align: left; white-space: normal; max-width: 40rem; }
tr:nth-child(even) td { background: #fafafa; }
p.note { max-width: 60rem; }
"""


def csv_to_html(csv_path, *, title: str, simulated: str = "") -> str:
    """The CSV at ``csv_path`` as one self-contained HTML page (numbers to 4 significant digits,
    empty cells blank); ``simulated``: a notice shown above the table when its data are generated."""
    import pandas as pd

    table = pd.read_csv(csv_path)
    body = table.to_html(index=False, na_rep="", float_format=lambda x: f"{x:.4g}", border=0, escape=True)
    notice = f'<p class="note"><strong>{html.escape(simulated)}</strong></p>' if simulated else ""
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body><p class='note'><code>{html.escape(str(csv_path))}</code>: "
            f"{len(table)} rows (the CSV is the file of record)</p>{notice}{body}</body></html>")
