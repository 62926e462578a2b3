//! The matrix's memory section: the RSS of a 1-member tern with `--shards` 1, 2, 4 and 8 and of
//! a 1-member etcd after loading N distinct keys of 64 bytes (`<key>/<n>`, 256 clients), as
//! MiB and bytes per key. Every shard reads one published copy of the store, so the shard
//! count should barely move tern's figure; the ratios are printed beside the table.

use super::*;

/// One server's memory before and after the load.
struct Loaded {
    label: String,
    before_kib: Option<u64>,
    after_kib: Option<u64>,
    keys: u64,
    errors: u64,
}

impl Loaded {
    fn row(&self) -> String {
        let mib =
            |k: Option<u64>| k.map_or("?".to_string(), |k| format!("{:.1}", k as f64 / 1024.0));
        let per_key = match (self.before_kib, self.after_kib) {
            (Some(b), Some(a)) if self.keys > 0 => {
                format!(
                    "{:.0}",
                    (a.saturating_sub(b) * 1024) as f64 / self.keys as f64
                )
            }
            _ => "?".to_string(),
        };
        format!(
            "| {} | {} | {} | {} | {} |",
            self.label,
            mib(self.before_kib),
            mib(self.after_kib),
            per_key,
            self.errors
        )
    }
}

fn load(cluster: &Cluster, label: String, keys: u64, threads: usize) -> Loaded {
    let pid = cluster.members[0].child.id();
    let before_kib = rss_kib(pid);
    let mut spec = Spec::new(vec![cluster.leader], Op::Put);
    spec.value_size = 64;
    spec.clients = 256;
    spec.threads = threads;
    spec.key = "/v2/keys/load".to_string();
    spec.sequential_keys = true;
    spec.stop = Stop::Requests(keys);
    let errors = loadgen::run(&spec).map_or(keys, |r| r.errors);
    // Let a pending snapshot or compaction settle before reading the RSS.
    std::thread::sleep(Duration::from_secs(2));
    Loaded {
        label,
        before_kib,
        after_kib: rss_kib(pid),
        keys,
        errors,
    }
}

pub fn memory_section(root: &Path, etcd_bin: Option<&PathBuf>, mode: &Mode) {
    let keys = mode.load_keys;
    println!("## Memory: RSS after {keys} keys of 64 bytes\n");
    println!("| server | RSS before MiB | RSS after MiB | bytes per key | errors |");
    println!("|---|---:|---:|---:|---:|");
    let mut tern = Vec::new();
    for shards in [1, 2, 4, 8] {
        let n = shards.to_string();
        let cluster = Cluster::start_with(Kind::Tern, 1, root, None, &["--shards", &n]);
        let loaded = load(
            &cluster,
            format!("tern --shards {shards}"),
            keys,
            mode.threads,
        );
        println!("{}", loaded.row());
        tern.push(loaded);
    }
    let etcd = etcd_bin.map(|b| {
        let cluster = Cluster::start(Kind::Etcd(b.clone()), 1, root, None);
        let loaded = load(&cluster, "etcd".to_string(), keys, mode.threads);
        println!("{}", loaded.row());
        loaded
    });
    let ratio = |a: &Loaded, b: &Loaded| match (a.after_kib, b.after_kib) {
        (Some(a), Some(b)) if b > 0 => format!("{:.2}", a as f64 / b as f64),
        _ => "?".to_string(),
    };
    println!(
        "\nRSS(--shards 8) / RSS(--shards 1): {}; RSS(--shards 8) / etcd: {}\n",
        ratio(&tern[3], &tern[0]),
        etcd.as_ref()
            .map_or("—".to_string(), |e| ratio(&tern[3], e))
    );
}
