//! Key paths as etcd's store sees them: cleaning (Go's `path.Clean("/" + key)`), splitting into
//! components, and the hidden-key rule (`_`-prefixed components).
//!
//! Pure string functions. Knows nothing about nodes, events or watchers.

/// Go's `path.Clean(path.Join("/", key))`: always rooted, no empty, `.` or `..` components, no
/// trailing slash (except the root itself, `/`).
pub fn clean(key: &str) -> String {
    if is_clean(key) {
        return key.to_string();
    }
    let mut components: Vec<&str> = Vec::new();
    for component in key.split('/') {
        match component {
            "" | "." => {}
            ".." => {
                components.pop();
            }
            name => components.push(name),
        }
    }
    if components.is_empty() {
        return "/".to_string();
    }
    let mut out = String::with_capacity(key.len() + 1);
    for name in components {
        out.push('/');
        out.push_str(name);
    }
    out
}

/// Whether `key` is already what [`clean`] makes of it: `/`, or `/`-separated names, none
/// empty, `.` or `..`, with no trailing `/`.
pub fn is_clean(key: &str) -> bool {
    if key == "/" {
        return true;
    }
    let Some(rest) = key.strip_prefix('/') else {
        return false;
    };
    rest.split('/').all(|name| !matches!(name, "" | "." | ".."))
}

/// [`clean`] without a copy when `key` is clean already.
pub fn clean_cow(key: &str) -> std::borrow::Cow<'_, str> {
    if is_clean(key) {
        key.into()
    } else {
        clean(key).into()
    }
}

/// The names along a clean path, root excluded: `/a/b` gives `a`, `b`; `/` gives nothing.
pub fn components(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|name| !name.is_empty())
}

/// Splits a clean path into its parent directory and its last name: `/a/b` gives (`/a`, `b`),
/// `/a` gives (`/`, `a`), `/` gives (`/`, ``).
pub fn split(path: &str) -> (&str, &str) {
    match path.rfind('/') {
        Some(0) => ("/", &path[1..]),
        Some(at) => (&path[..at], &path[at + 1..]),
        None => ("/", path),
    }
}

/// Go's `path.Join(parent, name)` for a clean parent and a plain name.
pub fn join(parent: &str, name: &str) -> String {
    let mut out = String::with_capacity(parent.len() + 1 + name.len());
    out.push_str(parent);
    if !parent.ends_with('/') {
        out.push('/');
    }
    out.push_str(name);
    out
}

/// A name is hidden when it starts with `_`: a directory listing leaves it out.
pub fn is_hidden_name(name: &str) -> bool {
    name.starts_with('_')
}

/// etcd's `isHidden(watchPath, keyPath)`: whether a change at `key_path` is hidden from a watcher
/// at `watch_path`, i.e. some component below the watch path starts with `_`. A watch path longer
/// than the key (a watcher under a deleted directory) never counts as hidden.
pub fn is_hidden(watch_path: &str, key_path: &str) -> bool {
    if watch_path.len() > key_path.len() {
        return false;
    }
    let Some(after) = key_path.get(watch_path.len()..) else {
        return false;
    };
    clean(&format!("/{after}")).contains("/_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_clean_is_true_exactly_when_clean_changes_nothing() {
        let parts = ["", "a", ".", "..", "bc", "/"];
        let mut keys = vec![String::new()];
        for a in parts {
            for b in parts {
                for c in parts {
                    keys.push(format!("/{a}/{b}{c}"));
                    keys.push(format!("{a}/{b}/{c}"));
                    keys.push(format!("/{a}{b}/{c}/"));
                }
            }
        }
        for k in &keys {
            assert_eq!(is_clean(k), clean(k) == *k, "{k:?}");
            assert_eq!(clean_cow(k), clean(k), "{k:?}");
        }
    }

    #[test]
    fn clean_matches_go_path_clean_of_rooted_keys() {
        let cases = [
            ("", "/"),
            ("/", "/"),
            ("foo", "/foo"),
            ("/foo/", "/foo"),
            ("//foo//bar//", "/foo/bar"),
            ("/foo/./bar", "/foo/bar"),
            ("/foo/../bar", "/bar"),
            ("/../../foo", "/foo"),
            ("/a/b/../../..", "/"),
            ("/a/.../b", "/a/.../b"),
            ("/_x/y", "/_x/y"),
        ];
        for (key, want) in cases {
            assert_eq!(clean(key), want, "clean({key:?})");
        }
    }

    #[test]
    fn split_and_join_are_inverse_on_clean_paths() {
        assert_eq!(split("/a/b"), ("/a", "b"));
        assert_eq!(split("/a"), ("/", "a"));
        assert_eq!(split("/"), ("/", ""));
        assert_eq!(join("/", "a"), "/a");
        assert_eq!(join("/a", "b"), "/a/b");
        assert_eq!(components("/a/b").collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(components("/").count(), 0);
    }

    #[test]
    fn hidden_rule_is_relative_to_the_watch_path() {
        assert!(is_hidden("/", "/_x"));
        assert!(is_hidden("/foo", "/foo/_x"));
        assert!(is_hidden("/foo", "/foo/_x/y"));
        assert!(!is_hidden("/foo/_x", "/foo/_x"));
        assert!(!is_hidden("/_dir", "/_dir/a"));
        assert!(!is_hidden("/foo", "/foo/bar"));
        assert!(!is_hidden("/foo/bar/baz", "/foo"));
        assert!(is_hidden_name("_a"));
        assert!(!is_hidden_name("a_"));
    }
}
