//! The record-manager conformance suite.

use crate::record::{Record, RecordManager};

/// The namespaces the suite uses; the manager must hold no records in them when it starts.
const NAMESPACE: &str = "conformance";
const OTHER_NAMESPACE: &str = "conformance-elsewhere";

fn keys(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

/// Checks the rules every [`RecordManager`] shares with
/// [`InMemoryRecordManager`](crate::InMemoryRecordManager):
/// - an unknown namespace has no keys;
/// - `exists` answers for every key, in order;
/// - `list_keys` filters by group, and a record without a group is in no group;
/// - `update` of a recorded key moves it to its new group;
/// - `delete_keys` counts only the records that existed;
/// - namespaces are isolated.
///
/// It uses the namespaces `conformance` and `conformance-elsewhere`, which must be empty
/// when it starts, and leaves them empty. Persistent backends should run it on a fresh
/// table or database.
///
/// # Panics
/// When the manager breaks a rule; the message names it.
pub async fn record_manager_conformance(records: &dyn RecordManager) {
    let ns = NAMESPACE;
    assert!(
        records
            .list_keys(ns, None)
            .await
            .expect("conformance: list_keys() failed")
            .is_empty(),
        "conformance: an unknown namespace has no keys"
    );
    records
        .update(
            ns,
            &[
                Record::new("k1", Some("g1".into())),
                Record::new("k2", Some("g2".into())),
                Record::new("k3", None),
            ],
        )
        .await
        .expect("conformance: update() failed");
    assert_eq!(
        records
            .exists(ns, &keys(&["k1", "nope", "k3"]))
            .await
            .expect("conformance: exists() failed"),
        [true, false, true],
        "conformance: exists() answers for every key, in order"
    );
    let mut g = records
        .list_keys(ns, Some(&keys(&["g1", "g2"])))
        .await
        .expect("conformance: list_keys() failed");
    g.sort();
    assert_eq!(
        g,
        ["k1", "k2"],
        "conformance: list_keys() filters by group; a record without one is in none"
    );
    // Moving a key to another group.
    records
        .update(ns, &[Record::new("k1", Some("g2".into()))])
        .await
        .expect("conformance: update() failed");
    assert!(
        records
            .list_keys(ns, Some(&keys(&["g1"])))
            .await
            .expect("conformance: list_keys() failed")
            .is_empty(),
        "conformance: update() moves a recorded key to its new group"
    );
    assert_eq!(
        records
            .delete_keys(ns, &keys(&["k1", "nope"]))
            .await
            .expect("conformance: delete_keys() failed"),
        1,
        "conformance: delete_keys() counts the records that existed"
    );
    assert_eq!(
        records
            .list_keys(ns, None)
            .await
            .expect("conformance: list_keys() failed")
            .len(),
        2,
        "conformance: delete_keys() deletes only the given keys"
    );
    assert!(
        records
            .exists(OTHER_NAMESPACE, &keys(&["k2"]))
            .await
            .expect("conformance: exists() failed")
            == [false],
        "conformance: namespaces are isolated"
    );
    records
        .delete_keys(ns, &keys(&["k2", "k3"]))
        .await
        .expect("conformance: delete_keys() failed");
}
