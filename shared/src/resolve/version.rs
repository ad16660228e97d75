//! Version derivation from the containers when no version key is present (B §1.5).

use super::view::ContainerView;

/// `keptn.sh/container` named a container the pod (or template) does not have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct UnknownContainer(pub String);

/// [`derive`]'s version alone.
#[cfg(test)]
pub(super) fn derive_version(
    containers: &[ContainerView],
    container: Option<&str>,
) -> Result<String, UnknownContainer> {
    derive(containers, container).map(|(version, _)| version)
}

/// How [`derive`] came to its version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Derived {
    /// The image tag of the named container.
    ImageTag,
    /// The hash of all containers.
    Hash,
}

/// The version of B §1.5: the image tag of the container named `container` when it has a usable
/// one, else the FNV-1a hash of all containers' names, images and env; with which of the two it
/// is.
///
/// A nameless container never matches an absent `container` (Keptn's code would match an empty
/// name against an empty request, but valid pods always name their containers).
pub(super) fn derive(
    containers: &[ContainerView],
    container: Option<&str>,
) -> Result<(String, Derived), UnknownContainer> {
    if let Some(wanted) = container {
        let found = containers
            .iter()
            .find(|c| c.name == wanted)
            .ok_or_else(|| UnknownContainer(wanted.to_owned()))?;
        if let Some(tag) = image_tag(&found.image) {
            return Ok((tag.to_owned(), Derived::ImageTag));
        }
    }
    Ok((containers_hash(containers).to_string(), Derived::Hash))
}

/// The last `:`-separated part of an image reference, when there are at least two parts and it
/// is neither empty nor `latest`. Deliberately naive, as in Keptn: `localhost:5000/app` yields
/// `5000/app` and `img@sha256:abc` yields `abc`.
fn image_tag(image: &str) -> Option<&str> {
    let (_, last) = image.rsplit_once(':')?;
    (!last.is_empty() && last != "latest").then_some(last)
}

/// FNV-1a (32 bit) over `name + image` then `envName + envValue` per env entry, for every
/// container in order.
fn containers_hash(containers: &[ContainerView]) -> u32 {
    let mut hash = Fnv1a32::new();
    for c in containers {
        hash.write(&c.name);
        hash.write(&c.image);
        for env in &c.env {
            hash.write(&env.name);
            hash.write(&env.value);
        }
    }
    hash.finish()
}

/// Feeding the parts one by one equals hashing their concatenation.
struct Fnv1a32(u32);

impl Fnv1a32 {
    const OFFSET_BASIS: u32 = 0x811c_9dc5;
    const PRIME: u32 = 0x0100_0193;

    fn new() -> Self {
        Self(Self::OFFSET_BASIS)
    }

    fn write(&mut self, s: &str) {
        for byte in s.bytes() {
            self.0 ^= u32::from(byte);
            self.0 = self.0.wrapping_mul(Self::PRIME);
        }
    }

    fn finish(&self) -> u32 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resolve::view::EnvVarView;

    fn container(name: &str, image: &str, env: &[(&str, &str)]) -> ContainerView {
        ContainerView {
            name: name.into(),
            image: image.into(),
            env: env
                .iter()
                .map(|(n, v)| EnvVarView {
                    name: (*n).into(),
                    value: (*v).into(),
                })
                .collect(),
        }
    }

    fn fnv(s: &str) -> String {
        let mut h = Fnv1a32::new();
        h.write(s);
        h.finish().to_string()
    }

    #[test]
    fn fnv1a32_reference_vectors() {
        // Published FNV-1a 32-bit test vectors.
        assert_eq!(fnv(""), 0x811c_9dc5_u32.to_string());
        assert_eq!(fnv("a"), 0xe40c_292c_u32.to_string());
        assert_eq!(fnv("foobar"), 0xbf9c_f968_u32.to_string());
    }

    #[test]
    fn image_tag_table() {
        let rows = [
            ("tag_plain", "nginx:1.25.3", Some("1.25.3")),
            (
                "tag_with_registry",
                "ghcr.io/podtato-head/entry:0.1.0",
                Some("0.1.0"),
            ),
            (
                "tag_registry_port_and_tag",
                "localhost:5000/app:2.0",
                Some("2.0"),
            ),
            (
                "tag_registry_port_no_tag",
                "localhost:5000/app",
                Some("5000/app"),
            ),
            ("tag_digest_yields_hex", "img@sha256:abc123", Some("abc123")),
            ("tag_latest_ignored", "nginx:latest", None),
            (
                "tag_latest_is_case_sensitive",
                "nginx:Latest",
                Some("Latest"),
            ),
            ("tag_missing", "nginx", None),
            ("tag_empty", "nginx:", None),
            ("tag_empty_image", "", None),
        ];
        for (rule, image, want) in rows {
            assert_eq!(image_tag(image), want, "{rule}");
        }
    }

    #[test]
    fn version_from_named_container_tag() {
        let cs = [
            container("sidecar", "envoy:1.0", &[]),
            container("app", "repo/app:0.4.0_1", &[]),
        ];
        assert_eq!(derive_version(&cs, Some("app")).unwrap(), "0.4.0_1");
        assert_eq!(derive_version(&cs, Some("sidecar")).unwrap(), "1.0");
    }

    #[test]
    fn version_hash_concatenates_all_containers_and_env_in_order() {
        let cs = [
            container("a", "img:1", &[("K", "V"), ("E", "")]),
            container("b", "other", &[]),
        ];
        let want = fnv("aimg:1KVEbother");
        // Without keptn.sh/container the tag is never used (B §1.5 [DIVERGENCE]), even with one container.
        assert_eq!(derive_version(&cs, None).unwrap(), want);
        assert_eq!(
            derive_version(&cs[..1], None).unwrap(),
            fnv("aimg:1KVE"),
            "version_single_container_without_key_is_hash"
        );
        // Named container whose tag is `latest` or absent: hash over all containers.
        let latest = [container("a", "img:latest", &[("K", "V")]), cs[1].clone()];
        assert_eq!(
            derive_version(&latest, Some("a")).unwrap(),
            fnv("aimg:latestKVbother")
        );
        let untagged = [container("a", "img", &[])];
        assert_eq!(derive_version(&untagged, Some("a")).unwrap(), fnv("aimg"));
    }

    #[test]
    fn version_hash_changes_with_env_value() {
        let one = [container("a", "img", &[("K", "1")])];
        let two = [container("a", "img", &[("K", "2")])];
        assert_ne!(
            derive_version(&one, None).unwrap(),
            derive_version(&two, None).unwrap()
        );
    }

    #[test]
    fn version_hash_of_no_containers_is_offset_basis() {
        assert_eq!(derive_version(&[], None).unwrap(), "2166136261");
    }

    #[test]
    fn version_unknown_container_is_an_error() {
        let cs = [container("app", "img:1", &[])];
        assert_eq!(
            derive_version(&cs, Some("nope")),
            Err(UnknownContainer("nope".into()))
        );
    }
}
