//! Point ids: Qdrant accepts only UUIDs and unsigned integers, so every [`DocumentId`] maps
//! to a UUIDv5 point id; the original id travels in the payload.

use catena_core::DocumentId;
use uuid::Uuid;

/// The namespace of point ids in a store without tenants (a fixed, random UUID).
const POINT_NAMESPACE: Uuid = Uuid::from_u128(0x2c5e_8a41_b7d3_4f09_9e6a_53c1_d08f_7b24);

/// The namespace of point ids in a multi-tenant store (a fixed, random UUID), so that two
/// tenants' documents with the same id are two points.
const TENANT_POINT_NAMESPACE: Uuid = Uuid::from_u128(0x91d4_07f3_6e2a_4b85_a3c9_e81b_5f60_2d7e);

/// The point id of `id`, in `tenant`'s space when the store is multi-tenant.
pub(crate) fn point_uuid(id: &DocumentId, tenant: Option<&str>) -> Uuid {
    match tenant {
        None => Uuid::new_v5(&POINT_NAMESPACE, id.as_str().as_bytes()),
        Some(t) => {
            // Length-prefix the tenant so ("ab", "c") and ("a", "bc") differ.
            let name = format!("{}:{t}{}", t.len(), id.as_str());
            Uuid::new_v5(&TENANT_POINT_NAMESPACE, name.as_bytes())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_distinct() {
        let a = DocumentId::from("doc-1");
        assert_eq!(point_uuid(&a, None), point_uuid(&a, None));
        assert_eq!(point_uuid(&a, None).get_version_num(), 5);
        assert_ne!(point_uuid(&a, None), point_uuid(&"doc-2".into(), None));
        assert_ne!(point_uuid(&a, None), point_uuid(&a, Some("acme")));
        assert_ne!(point_uuid(&a, Some("acme")), point_uuid(&a, Some("globex")));
        assert_ne!(
            point_uuid(&"c".into(), Some("ab")),
            point_uuid(&"bc".into(), Some("a"))
        );
        // A UUID-shaped id is still hashed, so every id maps the same way.
        let uuid_like = DocumentId::derived("text", None);
        assert_ne!(point_uuid(&uuid_like, None).to_string(), uuid_like.as_str());
        // Pinned: changing the mapping would orphan every stored point.
        assert_eq!(
            point_uuid(&a, None).to_string(),
            Uuid::new_v5(&POINT_NAMESPACE, b"doc-1").to_string()
        );
    }
}
