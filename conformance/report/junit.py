"""``reports/junit.xml``: one testsuite per backend, one testcase per check, for CI test tabs."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from ..results import CheckResult


def build(results: list[CheckResult]) -> ET.ElementTree:
    root = ET.Element("testsuites", name="conformance")
    for backend in dict.fromkeys(r.backend for r in results):
        rs = [r for r in results if r.backend == backend]
        suite = ET.SubElement(root, "testsuite", name=f"conformance.{backend}", tests=str(len(rs)),
                              failures=str(sum(r.status == "fail" for r in rs)),
                              errors=str(sum(r.status == "error" for r in rs)),
                              skipped=str(sum(r.status == "skip" for r in rs)),
                              time=f"{sum(r.duration_s for r in rs):.3f}")
        for r in rs:
            case = ET.SubElement(suite, "testcase", classname=f"{backend}.{r.check_id.split('.')[0]}",
                                 name=r.check_id, time=f"{r.duration_s:.3f}")
            text = "\n".join(r.messages) or r.note
            if r.status == "fail":
                ET.SubElement(case, "failure", message=(r.messages or ["failed"])[0][:500]).text = text
            elif r.status == "error":
                ET.SubElement(case, "error", message=(r.messages or ["error"])[0][:500]).text = text
            elif r.status == "skip":
                ET.SubElement(case, "skipped", message=r.note[:500])
            ET.SubElement(case, "system-out").text = (
                f"mode={r.mode} cases={r.n_cases} max_abs={r.max_abs:g} max_ulp={r.max_ulp:g} "
                f"allowed_ulp={r.allowed_ulp:g}")
    return ET.ElementTree(root)


def write(results: list[CheckResult], path: Path) -> None:
    tree = build(results)
    ET.indent(tree)
    tree.write(path, encoding="utf-8", xml_declaration=True)
