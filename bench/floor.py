"""The least work that a table sync can do, as a baseline for ``scraper sync``.

Usage: python bench/floor.py URL OUTPUT.yaml

Downloads the page with requests, parses it with lxml, reads the cell texts of the
first table into rows keyed by its header texts and writes them with
yaml.safe_dump. It has no configuration, validation, history or error handling.
"""

import sys

import lxml.html
import requests
import yaml


def main() -> None:
    url, output = sys.argv[1:3]
    response = requests.get(url, timeout=10)
    response.raise_for_status()
    document = lxml.html.fromstring(response.content)
    table = document.find(".//table")
    lines = [
        [cell.text_content().strip() for cell in row if cell.tag in ("td", "th")]
        for row in table.iter("tr")
    ]
    header, body = lines[0], lines[1:]
    rows = [dict(zip(header, cells)) for cells in body]
    with open(output, "w", encoding="utf-8") as handle:
        yaml.safe_dump(rows, handle, allow_unicode=True, sort_keys=False)


if __name__ == "__main__":
    main()
