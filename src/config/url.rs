//! The URLs of etcd's URL flags and the `name=url,...` form of `--initial-cluster`.
//!
//! A deliberately small parser: `http(s)://host:port` with no path, as etcd's `types.NewURLs`
//! accepts them (IPv6 hosts in brackets: `http://[::1]:2379`). Error texts follow etcd's.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// `http` or `https`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// One parsed `scheme://host:port` URL. `host` is kept as written (IPv6 without brackets).
/// Not [`crate::client::Url`]: a flag's URL is validated as etcd validates flags (a port, no
/// path, a scheme tern listens with), while the client's follows Go's `net/url` for requests
/// (paths, queries, opaque forms and the error texts etcdctl prints).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Url {
    pub scheme: Scheme,
    pub host: String,
    pub port: u16,
}

impl Url {
    /// Parses one URL the way etcd's `types.NewURLs` checks it (surrounding spaces are trimmed).
    pub fn parse(input: &str) -> Result<Url, String> {
        let s = input.trim();
        let (scheme, rest) = match s.split_once("://") {
            Some((sc, rest)) if sc.eq_ignore_ascii_case("http") => (Scheme::Http, rest),
            Some((sc, rest)) if sc.eq_ignore_ascii_case("https") => (Scheme::Https, rest),
            _ => return Err(format!("URL scheme must be http or https: {s}")),
        };
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        if tail.starts_with('/') {
            return Err(format!("URL must not contain a path: {s}"));
        }
        if !tail.is_empty() {
            return Err(format!("URL must not contain a query or fragment: {s}"));
        }
        let bad_form = || format!("URL address does not have the form \"host:port\": {s}");
        let (host, port) = if let Some(after_bracket) = authority.strip_prefix('[') {
            let (h, p) = after_bracket.split_once("]:").ok_or_else(bad_form)?;
            h.parse::<std::net::Ipv6Addr>().map_err(|_| bad_form())?;
            (h, p)
        } else {
            let (h, p) = authority.rsplit_once(':').ok_or_else(bad_form)?;
            if h.contains(':') {
                return Err(bad_form());
            }
            (h, p)
        };
        let host_ok = !host.is_empty()
            && host.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':' | b'%')
            });
        if !host_ok || port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad_form());
        }
        let port = port.parse::<u16>().map_err(|_| bad_form())?;
        Ok(Url {
            scheme,
            host: host.to_string(),
            port,
        })
    }

    pub fn is_https(&self) -> bool {
        self.scheme == Scheme::Https
    }

    /// `host:port`, with IPv6 hosts in brackets (Go's `url.URL.Host`).
    pub fn host_port(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The address to bind: an IP literal, or `localhost` as 127.0.0.1; `None` for a hostname.
    pub fn bind_addr(&self) -> Option<SocketAddr> {
        let ip = if self.host.eq_ignore_ascii_case("localhost") {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        } else {
            self.host.parse::<IpAddr>().ok()?
        };
        Some(SocketAddr::new(ip, self.port))
    }

    /// etcd's `checkBindURLs`: a URL to bind must name an IP or `localhost`.
    pub fn check_bindable(&self) -> Result<(), String> {
        match self.bind_addr() {
            Some(_) => Ok(()),
            None => Err(format!("expected IP in URL for binding ({self})")),
        }
    }
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme.as_str(), self.host_port())
    }
}

/// A URL to listen on: its host is an IP or `localhost`, so it always has a socket address.
/// Derefs to its [`Url`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ListenUrl {
    url: Url,
    addr: SocketAddr,
}

impl ListenUrl {
    /// Fails with `expected IP in URL for binding (...)` for a hostname.
    pub fn new(url: Url) -> Result<ListenUrl, String> {
        url.check_bindable()?;
        let addr = url.bind_addr().expect("checked bindable");
        Ok(ListenUrl { url, addr })
    }

    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The address to bind (`localhost` is 127.0.0.1).
    pub fn socket_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl std::ops::Deref for ListenUrl {
    type Target = Url;
    fn deref(&self) -> &Url {
        &self.url
    }
}

impl fmt::Display for ListenUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.url.fmt(f)
    }
}

/// Parses a comma-separated URL list and sorts it by its string form, as etcd's `types.NewURLs` does.
pub fn parse_url_list(s: &str) -> Result<Vec<Url>, String> {
    let mut urls = s
        .split(',')
        .map(Url::parse)
        .collect::<Result<Vec<_>, _>>()?;
    urls.sort_by_cached_key(|u| u.to_string());
    Ok(urls)
}

/// `--initial-cluster`: one `(name, peer URL)` pair per listed URL, sorted by name then URL
/// (a member with several peer URLs appears once per URL, as in the flag).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InitialCluster {
    pairs: Vec<(String, Url)>,
}

impl InitialCluster {
    /// Parses `name=url,name=url,...` (etcd's `types.NewURLsMap`): a name may repeat to list
    /// several URLs; empty entries are skipped; every URL is checked like any URL flag.
    pub fn parse(s: &str) -> Result<InitialCluster, String> {
        let mut pairs = Vec::new();
        for entry in s.split(',').filter(|e| !e.is_empty()) {
            let (name, url) = entry
                .split_once('=')
                .ok_or_else(|| format!("expected name=url, got {entry:?}"))?;
            if name.trim().is_empty() {
                return Err(format!("member name is empty in {entry:?}"));
            }
            pairs.push((name.to_string(), Url::parse(url)?));
        }
        Ok(InitialCluster::from_pairs(pairs))
    }

    /// One member with all its peer URLs.
    pub fn from_member(name: &str, urls: &[Url]) -> InitialCluster {
        InitialCluster::from_pairs(urls.iter().map(|u| (name.to_string(), u.clone())).collect())
    }

    fn from_pairs(mut pairs: Vec<(String, Url)>) -> InitialCluster {
        pairs.sort_by_cached_key(|(n, u)| (n.clone(), u.to_string()));
        InitialCluster { pairs }
    }

    /// Every `(name, peer URL)` pair, sorted by name then URL.
    pub fn iter(&self) -> std::slice::Iter<'_, (String, Url)> {
        self.pairs.iter()
    }

    /// The member names, sorted, each once.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.pairs.iter().map(|(n, _)| n.as_str()).collect();
        names.dedup();
        names
    }

    /// The peer URLs listed for `name` (empty when it is not listed).
    pub fn urls_of(&self, name: &str) -> Vec<&Url> {
        self.pairs
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, u)| u)
            .collect()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.pairs.iter().any(|(n, _)| n == name)
    }

    /// The number of members (distinct names), like etcd's `URLsMap.Len()`.
    pub fn len(&self) -> usize {
        self.names().len()
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// A URL listed twice (etcd refuses such a cluster: "initial cluster ... has duplicate url").
    pub fn duplicate_url(&self) -> Option<&Url> {
        self.pairs
            .iter()
            .enumerate()
            .find(|(i, (_, u))| self.pairs[..*i].iter().any(|(_, v)| v == u))
            .map(|(_, (_, u))| u)
    }
}

impl<'a> IntoIterator for &'a InitialCluster {
    type Item = &'a (String, Url);
    type IntoIter = std::slice::Iter<'a, (String, Url)>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl fmt::Display for InitialCluster {
    /// etcd's `URLsMap.String()`: `name=url` pairs, sorted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut pairs: Vec<String> = self.pairs.iter().map(|(n, u)| format!("{n}={u}")).collect();
        pairs.sort();
        f.write_str(&pairs.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_forms() {
        let ok = [
            ("http://127.0.0.1:2379", "http://127.0.0.1:2379"),
            (" https://example.com:443 ", "https://example.com:443"),
            ("HTTP://localhost:4001", "http://localhost:4001"),
            ("http://[::1]:2380", "http://[::1]:2380"),
            ("http://0.0.0.0:0", "http://0.0.0.0:0"),
        ];
        for (input, want) in ok {
            assert_eq!(
                Url::parse(input).map(|u| u.to_string()),
                Ok(want.to_string()),
                "{input}"
            );
        }
    }

    #[test]
    fn url_errors() {
        let bad = [
            (
                "ftp://1.2.3.4:1",
                "URL scheme must be http or https: ftp://1.2.3.4:1",
            ),
            ("1.2.3.4:1", "URL scheme must be http or https: 1.2.3.4:1"),
            ("", "URL scheme must be http or https: "),
            (
                "http://1.2.3.4",
                "URL address does not have the form \"host:port\": http://1.2.3.4",
            ),
            (
                "http://1.2.3.4:x",
                "URL address does not have the form \"host:port\": http://1.2.3.4:x",
            ),
            (
                "http://:2379",
                "URL address does not have the form \"host:port\": http://:2379",
            ),
            (
                "http://::1:2379",
                "URL address does not have the form \"host:port\": http://::1:2379",
            ),
            (
                "http://1.2.3.4:99999",
                "URL address does not have the form \"host:port\": http://1.2.3.4:99999",
            ),
            (
                "http://1.2.3.4:1/",
                "URL must not contain a path: http://1.2.3.4:1/",
            ),
            (
                "http://1.2.3.4:1/v2",
                "URL must not contain a path: http://1.2.3.4:1/v2",
            ),
        ];
        for (input, want) in bad {
            assert_eq!(Url::parse(input), Err(want.to_string()), "{input}");
        }
    }

    #[test]
    fn bind_addrs() {
        let cases = [
            ("http://localhost:2379", Some("127.0.0.1:2379")),
            ("http://10.0.0.1:2380", Some("10.0.0.1:2380")),
            ("http://[::1]:2380", Some("[::1]:2380")),
            ("http://example.com:2379", None),
        ];
        for (input, want) in cases {
            let got = Url::parse(input)
                .unwrap()
                .bind_addr()
                .map(|a| a.to_string());
            assert_eq!(got.as_deref(), want, "{input}");
        }
    }

    #[test]
    fn bind_check_names_the_url() {
        let u = Url::parse("http://example.com:2379").unwrap();
        assert_eq!(
            u.check_bindable(),
            Err("expected IP in URL for binding (http://example.com:2379)".into())
        );
    }

    #[test]
    fn lists_are_sorted_like_etcd() {
        let got = parse_url_list("http://b:1,http://a:2").unwrap();
        assert_eq!(
            got.iter().map(|u| u.to_string()).collect::<Vec<_>>(),
            ["http://a:2", "http://b:1"]
        );
    }

    #[test]
    fn initial_cluster_parses_and_prints() {
        let c = InitialCluster::parse(
            "b=http://10.0.0.2:2380,a=http://10.0.0.1:2380,,a=http://10.0.0.1:7001",
        )
        .unwrap();
        assert_eq!(
            c.to_string(),
            "a=http://10.0.0.1:2380,a=http://10.0.0.1:7001,b=http://10.0.0.2:2380"
        );
    }

    #[test]
    fn initial_cluster_accessors() {
        let c = InitialCluster::parse("b=http://h:2,a=http://h:1,a=http://h:3").unwrap();
        let got = format!(
            "{:?} {} {:?} {} {}",
            c.names(),
            c.len(),
            c.urls_of("a").iter().map(|u| u.port).collect::<Vec<_>>(),
            c.contains("c"),
            c.iter()
                .map(|(n, u)| format!("{n}:{}", u.port))
                .collect::<Vec<_>>()
                .join(",")
        );
        assert_eq!(got, "[\"a\", \"b\"] 2 [1, 3] false a:1,a:3,b:2");
    }

    #[test]
    fn listen_url_has_a_socket_addr() {
        let got = [
            "http://localhost:2379",
            "https://[::]:2380",
            "http://example.com:2379",
        ]
        .map(|s| ListenUrl::new(Url::parse(s).unwrap()).map(|l| l.socket_addr().to_string()));
        assert_eq!(
            got,
            [
                Ok("127.0.0.1:2379".to_string()),
                Ok("[::]:2380".to_string()),
                Err("expected IP in URL for binding (http://example.com:2379)".to_string())
            ]
        );
    }

    #[test]
    fn initial_cluster_errors() {
        let bad = [
            ("infra0", "expected name=url, got \"infra0\""),
            (
                "=http://1.2.3.4:1",
                "member name is empty in \"=http://1.2.3.4:1\"",
            ),
            ("a=1.2.3.4:1", "URL scheme must be http or https: 1.2.3.4:1"),
        ];
        for (input, want) in bad {
            assert_eq!(
                InitialCluster::parse(input),
                Err(want.to_string()),
                "{input}"
            );
        }
    }

    #[test]
    fn initial_cluster_duplicate_url() {
        let c = InitialCluster::parse("a=http://1.1.1.1:1,b=http://1.1.1.1:1").unwrap();
        assert_eq!(
            c.duplicate_url().map(|u| u.to_string()).as_deref(),
            Some("http://1.1.1.1:1")
        );
    }
}
