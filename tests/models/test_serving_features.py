"""Train/serve parity: the features the server builds for K candidates of one user
(`FeedBundle.candidate_frame`, from the model's state and the user's live state) are the
features the offline pipeline computes for the same user, items and time
(`FeedBundle.transform`, the causal pass that training and evaluation use)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from reelrec.data.records import EVENT_SCHEMA
from reelrec.models.api import UserContext


def _events_now(model: Any, user_id: int, items: np.ndarray, now_ms: int, tab: int) -> pa.Table:
    """K events of one user at one timestamp (so none sees another), labels all 0."""
    k = items.size
    duration = model.catalog.duration_ms[model.catalog.positions(items)]
    cols: dict[str, Any] = {name: np.zeros(k, np.int64) for name in EVENT_SCHEMA.names}
    cols.update(user_id=np.full(k, user_id), item_id=items, timestamp_ms=np.full(k, now_ms),
                tab=np.full(k, tab), duration_ms=duration)  # fmt: skip
    return pa.Table.from_pydict(
        {n: pa.array(cols[n], EVENT_SCHEMA.field(n).type) for n in EVENT_SCHEMA.names},
        schema=EVENT_SCHEMA,
    )


def test_served_features_equal_the_offline_features(model: Any) -> None:
    state = model.state
    user_id = int(state.user_ids[np.argmax((state.hist >= 0).sum(axis=1))])  # longest history
    history = model.user_history(user_id)
    # candidates: the authors of the user's history (non-zero same-author counts) and others
    by_seen = np.isin(
        model.catalog.author_id, model.catalog.authors(model.catalog.positions(history))
    )
    items = np.concatenate(
        [model.catalog.item_id[by_seen][:20], model.catalog.item_id[~by_seen][:20]]
    )
    last_ms, session = model.user_session(user_id)
    now_ms = last_ms + 600_000  # ten minutes on: the same session
    offline, _ = model.transform(_events_now(model, user_id, items, now_ms, tab=1))
    served = model.candidate_frame(
        UserContext(user_id, now_ms, 1, history, last_ms, session), items
    )

    assert history.size > 0 and session > 0 and offline.dense.shape == served.dense.shape
    for name in ("dense", "fields", "tags", "hist_item", "hist_author", "author_id"):
        np.testing.assert_allclose(getattr(served, name), getattr(offline, name), rtol=1e-6,
                                   atol=1e-6, err_msg=name)  # fmt: skip
