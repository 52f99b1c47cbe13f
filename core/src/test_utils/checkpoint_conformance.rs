//! The checkpointer conformance suite.

use serde_json::json;

use crate::checkpoint::{CheckpointError, Checkpointer};

/// Checks the rules every [`Checkpointer`] shares with
/// [`InMemoryCheckpointer`](crate::InMemoryCheckpointer):
/// - an unknown run has no checkpoint and an empty history;
/// - steps are written in order from 0; a step that is not the next one (a gap, a repeat, a
///   second writer that read an older step) is a [`CheckpointError::Conflict`] and changes
///   nothing;
/// - state comes back exactly as written (nested objects, unicode, large numbers);
/// - `history(from)` returns the steps from `from` on, oldest first;
/// - runs are isolated, `delete` forgets one run only, and deleting twice is not an error;
/// - of many writers racing for the same next step, exactly one wins;
/// - bad run ids (empty, a path) are refused.
///
/// Uses runs named `conformance-*`, which must not exist when it starts; leaves them deleted.
///
/// # Panics
/// When a rule does not hold.
pub async fn checkpointer_conformance(saver: &dyn Checkpointer) {
    let (a, b) = ("conformance-a", "conformance-b");
    assert!(saver.latest(a).await.expect("latest").is_none());
    assert!(saver.history(a, 0).await.expect("history").is_empty());

    let state0 = json!({"messages": [{"role": "user", "text": "héllo 🚀 \"quoted\""}], "n": 9_007_199_254_740_993u64});
    saver.put(a, 0, &state0).await.expect("step 0");
    let conflict = saver
        .put(a, 2, &json!({}))
        .await
        .expect_err("a gap is refused");
    assert!(
        matches!(
            conflict.as_checkpoint_conflict(),
            Some(CheckpointError::Conflict {
                latest: Some(0),
                step: 2,
                ..
            })
        ),
        "{conflict}"
    );
    assert!(
        saver.put(a, 0, &json!({})).await.is_err(),
        "a repeated step is refused"
    );
    saver
        .put(a, 1, &json!({"k": [1, 2, {"x": null}]}))
        .await
        .expect("step 1");
    saver.put(b, 0, &json!("other run")).await.expect("run b");

    let latest = saver.latest(a).await.expect("latest").expect("some");
    assert_eq!((latest.run_id.as_str(), latest.step), (a, 1));
    assert_eq!(latest.state, json!({"k": [1, 2, {"x": null}]}));
    let all = saver.history(a, 0).await.expect("history");
    assert_eq!(all.iter().map(|c| c.step).collect::<Vec<_>>(), vec![0, 1]);
    assert_eq!(all[0].state, state0, "state round-trips exactly");
    assert_eq!(saver.history(a, 1).await.expect("history").len(), 1);

    // Racing writers: exactly one gets step 2.
    let wins = futures::future::join_all(
        (0..8).map(|i| async move { saver.put(a, 2, &json!({ "writer": i })).await.is_ok() }),
    )
    .await
    .into_iter()
    .filter(|ok| *ok)
    .count();
    assert_eq!(wins, 1, "exactly one writer advances a run");

    saver.delete(a).await.expect("delete");
    saver.delete(a).await.expect("delete twice");
    assert!(saver.latest(a).await.expect("latest").is_none());
    assert_eq!(
        saver
            .latest(b)
            .await
            .expect("latest")
            .expect("b kept")
            .state,
        json!("other run")
    );
    saver
        .put(a, 0, &json!({}))
        .await
        .expect("a deleted run starts again at 0");
    saver.delete(a).await.expect("delete");
    saver.delete(b).await.expect("delete");

    for bad in ["", "../etc/passwd", "a/b", "x y"] {
        assert!(
            saver.put(bad, 0, &json!({})).await.is_err(),
            "run id {bad:?} is refused"
        );
    }
}
