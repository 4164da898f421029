"""Data: canonical records, adapters for real log formats, and validation.

`load_dataset(name, path, start, end)` is the entry point; see each adapter's module doc
for its column mapping (kuairand.py, movielens.py, generic.py) and validate.py for the
row-level rules and dead-letter reasons.
"""

from reelrec.data.accounting import DEAD_LETTER_FILE, summary, write_dead_letters
from reelrec.data.dataset import DatasetName, DeadLetters, Interactions
from reelrec.data.generic import load_events
from reelrec.data.kuairand import KUAIRAND_LABELS, load_kuairand
from reelrec.data.loader import load_dataset, parse_date_option
from reelrec.data.movielens import MOVIELENS_LABELS, load_movielens
from reelrec.data.records import EVENT_SCHEMA, ITEM_SCHEMA, LABELS, USER_SCHEMA, Event
from reelrec.data.validate import RowRules

__all__ = [
    "DEAD_LETTER_FILE",
    "EVENT_SCHEMA",
    "ITEM_SCHEMA",
    "KUAIRAND_LABELS",
    "LABELS",
    "MOVIELENS_LABELS",
    "USER_SCHEMA",
    "DatasetName",
    "DeadLetters",
    "Event",
    "Interactions",
    "RowRules",
    "load_dataset",
    "load_events",
    "load_kuairand",
    "load_movielens",
    "parse_date_option",
    "summary",
    "write_dead_letters",
]
