"""The headline figures of one bench, as JSON, for bench/user_scale.py to put side by side."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Dict, Optional


def add_json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", metavar="PATH", help="also write the headline figures here, as JSON")


def write_figures(path: Optional[str], figures: Dict[str, Any]) -> None:
    if path:
        Path(path).write_text(json.dumps(figures, indent=1, sort_keys=True) + "\n")
