use super::*;
use std::time::Instant;

const MIB: u64 = 1 << 20;
const T0: u64 = 1_795_768_200_000;

/// A report line shaped like the agent's: `malloc` grows, the rest is steady.
fn line(seq: u64, epoch_ms: u64, arena: u64) -> String {
    let heap = 512 * MIB;
    let classes = json!({
        "java_heap": {"rss": heap, "pss": heap, "swap": 0, "size": 1024 * MIB, "mappings": 1},
        "malloc_arena": {"rss": arena, "pss": arena, "swap": 0, "size": arena * 2, "mappings": 40},
        "thread_stack": {"rss": 30 * MIB, "pss": 30 * MIB, "swap": 0, "size": 200 * MIB, "mappings": 60},
        "jvm_code": {"rss": 40 * MIB}, "jvm_metaspace": {"rss": 80 * MIB}, "jvm_gc": {"rss": 60 * MIB},
        "mapped_file": {"rss": 70 * MIB}, "other_anon": {"rss": 5 * MIB}, "kernel": {"rss": MIB},
    });
    let rss = heap + arena + 286 * MIB;
    json!({
        "schema": 1, "kind": "sample", "seq": seq, "time": crate::timefmt::rfc3339_millis(epoch_ms),
        "epoch_ms": epoch_ms, "pid": 4242,
        "totals": {"rss": rss, "pss": rss, "swap": 0, "anon": rss - 70 * MIB, "file": 70 * MIB, "shmem": 0},
        "breakdown": {"classes": classes},
        "malloc": {"arena_count": 8 + seq % 3, "retained": arena / 2, "in_use": arena / 2, "mmapped": 0, "trimmable_max": arena / 3},
        "nmt": {"mode": "summary", "committed": 900 * MIB, "categories": [
            {"name": "Java Heap", "reserved": 1024 * MIB, "committed": heap},
            {"name": "Class", "reserved": 1024 * MIB, "committed": 80 * MIB},
            {"name": "Thread", "reserved": 200 * MIB, "committed": 30 * MIB},
        ]},
        "zip": {"inflaters": {"alive": seq % 50, "pending_cleanup": seq % 7}, "deflaters": {"alive": 2, "pending_cleanup": 0}, "estimated_native_bytes": (seq % 50) * 40_000},
        "cgroup": {"limit": 2048 * MIB, "usage": rss + 100 * MIB, "oom_kills": 0},
        "trim": {"events": [], "count": 0, "released_total": 0},
        "findings": [],
        "jvm": {"heap": {"used": heap / 2, "committed": heap, "max": 1024 * MIB}, "threads": {"live": 60}},
    })
    .to_string()
}

/// The data the page embeds, read back from the HTML.
fn embedded(page: &str) -> Value {
    let start_tag = "<script type=\"application/json\" id=\"od-data\">";
    let start = page.find(start_tag).expect("data element") + start_tag.len();
    let end = start + page[start..].find("</script>").expect("end of data");
    serde_json::from_str(&page[start..end]).expect("embedded JSON")
}

fn chart<'a>(data: &'a Value, id: &str) -> &'a Value {
    data["charts"].as_array().expect("charts").iter().find(|c| c["id"] == id).expect(id)
}

fn series(chart: &Value, part: &str, label: &str) -> Vec<f64> {
    chart[part]
        .as_array()
        .expect(part)
        .iter()
        .find(|s| s["label"] == label)
        .expect(label)["v"]
        .as_array()
        .expect("values")
        .iter()
        .map(|v| v.as_f64().unwrap_or(f64::NAN))
        .collect()
}

#[test]
fn renders_a_report_of_three_samples() {
    let lines: Vec<String> = (0..3).map(|i| line(i + 1, T0 + i * 10_000, (100 + i) * MIB)).collect();
    let page = render_timeline(&lines, "svc-a").expect("page");
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert!(page.contains("<title>svc-a</title>"));
    let data = embedded(&page);
    assert_eq!(data["samples"], 3);
    assert_eq!(data["skipped"], 0);
    assert_eq!(data["buckets"], Value::Null, "three samples are drawn as they are");
    let memory = chart(&data, "memory");
    assert_eq!(memory["stack"].as_array().expect("stack").len(), 9, "the classes present in the report");
    assert_eq!(series(memory, "stack", "malloc arenas"), vec![100.0 * MIB as f64, 101.0 * MIB as f64, 102.0 * MIB as f64]);
    assert_eq!(series(memory, "lines", "cgroup limit")[0], 2048.0 * MIB as f64);
    assert_eq!(series(chart(&data, "malloc"), "lines", "arenas"), vec![9.0, 10.0, 8.0]);
    assert_eq!(series(chart(&data, "nmt"), "lines", "Class").len(), 3);
    assert!(chart(&data, "nmt")["lines"].as_array().expect("lines").iter().all(|l| l["label"] != "Java Heap"));
    assert_eq!(series(chart(&data, "zip"), "lines", "Inflaters alive"), vec![1.0, 2.0, 3.0]);
    assert_eq!(data["summary"][0], json!({"label": "RSS", "v": (512 + 102 + 286) * MIB, "unit": "bytes"}));
    assert!(!page.contains("Skipped"));
}

#[test]
fn renders_a_single_sample_and_an_empty_report() {
    let one = render_timeline([line(1, T0, MIB)], "one").expect("page");
    assert_eq!(embedded(&one)["samples"], 1);

    let empty = render_timeline(std::iter::empty::<&str>(), "nothing").expect("page");
    let data = embedded(&empty);
    assert_eq!(data["samples"], 0);
    assert_eq!(data["charts"], json!([]));
    assert_eq!(data["findings"], json!([]));
}

#[test]
fn bad_lines_are_skipped_and_counted_on_the_page() {
    let lines = vec![
        line(1, T0, MIB),
        "not json at all".to_string(),
        "{\"schema\":1,\"kind\":\"sample\",\"epoch_ms\":".to_string(),
        "[1,2,3]".to_string(),
        "".to_string(),
        "   ".to_string(),
        "{\"schema\":1,\"kind\":\"baseline\",\"epoch_ms\":5}".to_string(),
        "{\"schema\":1,\"kind\":\"sample\",\"seq\":9,\"epoch_ms\":\"yesterday\"}".to_string(),
        line(2, T0 + 10_000, MIB),
    ];
    let mut tl = Timeline::default();
    for l in &lines {
        tl.push_line(l);
    }
    assert_eq!(tl.skipped(), Skipped { unreadable: 3, other_kind: 1, no_time: 1 });
    assert_eq!(tl.sample_count(), 2);
    let page = tl.render("r").expect("page");
    assert!(page.contains("Skipped 5 lines (3 unreadable, 1 not samples, 1 without epoch_ms)."), "{page}");
    assert_eq!(embedded(&page)["skipped"], 5);
}

#[test]
fn missing_and_mistyped_fields_are_tolerated() {
    let lines = [
        r#"{"schema":1,"kind":"sample","seq":1,"epoch_ms":1000,"totals":"n/a","breakdown":{"classes":{"java_heap":{"rss":"big"},"gpu_driver":{"rss":4096}}},"malloc":[1],"nmt":{"categories":[{"committed":5},{"name":"Thread","committed":null}]},"findings":[{"severity":"warning"},7],"trim":{"events":[null,"x"]}}"#,
        r#"{"schema":2,"kind":"sample","seq":2,"epoch_ms":2000,"new_block":{"a":1},"totals":{"rss":8192}}"#,
        r#"{"schema":1,"seq":3,"epoch_ms":3000,"totals":null,"cgroup":{"limit":null}}"#,
    ];
    let page = render_timeline(lines, "odd").expect("page");
    let data = embedded(&page);
    assert_eq!(data["samples"], 3);
    assert_eq!(data["skipped"], 0);
    let memory = chart(&data, "memory");
    // A class the renderer does not know is still drawn, under its own name.
    assert_eq!(series(memory, "stack", "gpu driver")[0], 4096.0);
    assert!(memory["lines"].as_array().expect("lines").iter().all(|l| l["label"] != "cgroup limit"));
    assert!(data["charts"].as_array().expect("charts").iter().all(|c| c["id"] != "nmt"));
    assert_eq!(data["findings"], json!([]));
    assert!(page.contains("1 sample of a newer schema than 1"));
}

#[test]
fn totals_stand_in_when_there_is_no_breakdown() {
    let lines = [
        r#"{"schema":1,"kind":"sample","seq":1,"epoch_ms":1000,"totals":{"rss":300,"anon":200,"file":100,"shmem":0}}"#,
        r#"{"schema":1,"kind":"sample","seq":2,"epoch_ms":2000,"totals":{"rss":400,"anon":300,"file":90,"shmem":10}}"#,
    ];
    let data = embedded(&render_timeline(lines, "t").expect("page"));
    let memory = chart(&data, "memory");
    assert_eq!(series(memory, "stack", "anonymous"), vec![200.0, 300.0]);
    assert_eq!(series(memory, "stack", "file-backed"), vec![100.0, 90.0]);
    assert!(memory["note"].as_str().expect("note").contains("No breakdown"));
}

#[test]
fn report_strings_cannot_break_out_of_the_page() {
    let evil = "</script><script>alert(1)</script><!-- & \u{2028}";
    let finding = json!({
        "id": "zip-unclosed", "severity": "warning", "title": evil, "evidence": [evil, "x < y"],
        "remedy": "</SCRIPT>", "since_ms": T0,
    });
    let mut sample: Value = serde_json::from_str(&line(1, T0, MIB)).expect("line");
    sample["findings"] = json!([finding]);
    sample["breakdown"]["classes"]["</script>"] = json!({"rss": 1});
    let page = render_timeline([sample.to_string()], evil).expect("page");
    let lower = page.to_ascii_lowercase();
    // The page's own two script elements are the only ones that close.
    assert_eq!(lower.matches("</script").count(), 2, "{page}");
    assert_eq!(lower.matches("<script").count(), 2);
    assert!(!page.contains("<!--"));
    assert!(page.contains("<title>&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;&lt;!-- &amp; \u{2028}</title>"));
    let data_start = page.find("id=\"od-data\"").expect("data");
    assert!(!page[data_start..].contains('\u{2028}'), "JSON in a script keeps no raw line separator");
    let data = embedded(&page);
    assert_eq!(data["title"], evil);
    assert_eq!(data["findings"][0]["title"], evil);
    assert_eq!(data["findings"][0]["evidence"][1], "x < y");
}

#[test]
fn a_finding_is_listed_once_with_its_latest_evidence() {
    let mut lines = Vec::new();
    for i in 0..5u64 {
        let mut s: Value = serde_json::from_str(&line(i + 1, T0 + i * 10_000, MIB)).expect("line");
        let mut findings = vec![json!({
            "id": "malloc-retention", "severity": if i < 3 { "warning" } else { "critical" },
            "title": "glibc retains freed memory", "evidence": [format!("retained {} MiB", i * 10)],
            "remedy": "MALLOC_ARENA_MAX=2", "since_ms": T0 + 10_000,
        })];
        if i < 2 {
            findings.push(json!({"id": "nmt-off", "severity": "info", "title": "NMT is off", "evidence": [], "since_ms": null}));
        }
        s["findings"] = json!(findings);
        lines.push(s.to_string());
    }
    // Out of order on purpose: the latest by time wins, not the last line.
    lines.swap(3, 4);
    let data = embedded(&render_timeline(&lines, "f").expect("page"));
    let f = data["findings"].as_array().expect("findings");
    assert_eq!(f.len(), 2);
    assert_eq!(f[0]["id"], "malloc-retention");
    assert_eq!(f[0]["severity"], "critical");
    assert_eq!(f[0]["evidence"], json!(["retained 40 MiB"]));
    assert_eq!(f[0]["since"], T0 + 10_000);
    assert_eq!(f[0]["active"], true);
    assert_eq!(f[1]["id"], "nmt-off");
    assert_eq!(f[1]["active"], false);
    assert_eq!(f[1]["since"], T0, "without since_ms, the first sample that had it");
    assert_eq!(f[1]["last_seen"], T0 + 10_000);
}

#[test]
fn trims_repeated_by_later_samples_are_marked_once() {
    let ev = json!({"epoch_ms": T0 + 5_000, "released": 64 * MIB, "rss_before": 900 * MIB, "rss_after": 836 * MIB, "duration_ns": 2_500_000, "reason": "auto"});
    let lines: Vec<String> = (0..3u64)
        .map(|i| {
            let mut s: Value = serde_json::from_str(&line(i + 1, T0 + i * 10_000, MIB)).expect("line");
            s["trim"] = json!({"events": [ev.clone()], "count": 1, "released_total": 64 * MIB});
            s.to_string()
        })
        .collect();
    let data = embedded(&render_timeline(&lines, "t").expect("page"));
    let marks = data["trims"]["marks"].as_array().expect("marks");
    assert_eq!(marks.len(), 1);
    assert_eq!(marks[0]["released"], 64 * MIB);
    assert_eq!(marks[0]["reason"], "auto");
}

#[test]
fn trims_are_marked_at_the_agents_at_ms() {
    let mut s: Value = serde_json::from_str(&line(1, T0 + 10_000, MIB)).expect("line");
    s["trim"] = json!({"events": [{"seq": 1, "at_ms": T0 + 9_800, "released": MIB, "rss_before": 2 * MIB, "rss_after": MIB}]});
    let lines = [line(0, T0, MIB), s.to_string()];
    let data = embedded(&render_timeline(&lines, "t").expect("page"));
    assert_eq!(data["trims"]["marks"][0]["t"], T0 + 9_800);
}

#[test]
fn pauses_and_restarts_break_the_lines() {
    let mut lines: Vec<String> = (0..10u64).map(|i| line(i + 1, T0 + i * 10_000, MIB)).collect();
    lines.extend((0..10u64).map(|i| line(i + 11, T0 + 3_600_000 + i * 10_000, MIB)));
    let mut restarted: Value = serde_json::from_str(&line(21, T0 + 3_700_000, MIB)).expect("line");
    restarted["pid"] = json!(5151);
    lines.push(restarted.to_string());
    let data = embedded(&render_timeline(&lines, "gaps").expect("page"));
    assert_eq!(data["breaks"], json!([10, 20]));
    assert_eq!(data["interval_ms"], 10_000);
    let events = data["events"].as_array().expect("events");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["kind"], "restart");
}

#[test]
fn a_one_sample_spike_in_a_week_stays_visible() {
    let n = 60_480u64;
    let lines = (0..n).map(|i| {
        let arena = if i == 31_337 { 3000 * MIB } else { 100 * MIB + (i % 10) * MIB };
        line(i + 1, T0 + i * 10_000, arena)
    });
    let data = embedded(&render_timeline(lines, "spike").expect("page"));
    let points = data["t"].as_array().expect("t").len();
    assert!(points <= MAX_POINTS, "{points} points");
    let memory = chart(&data, "memory");
    let peak = |v: Vec<f64>| v.into_iter().filter(|x| !x.is_nan()).fold(0.0, f64::max);
    let spike_rss = (512 + 3000 + 286) as f64 * MIB as f64;
    assert_eq!(peak(series(memory, "lines", "RSS")), spike_rss);
    assert_eq!(peak(series(memory, "stack", "malloc arenas")), 3000.0 * MIB as f64);
    assert_eq!(peak(series(chart(&data, "malloc"), "lines", "retained (free in arenas)")), 1500.0 * MIB as f64);
    // The quiet baseline is still drawn too.
    let low = series(memory, "stack", "malloc arenas").into_iter().filter(|x| !x.is_nan()).fold(f64::MAX, f64::min);
    assert_eq!(low, 100.0 * MIB as f64);
}

#[test]
fn a_week_of_ten_second_samples_renders_quickly_and_small() {
    let n = 60_480u64;
    let lines: Vec<String> = (0..n)
        .map(|i| {
            let mut s: Value = serde_json::from_str(&line(i + 1, T0 + i * 10_000, (100 + i / 100) * MIB)).expect("line");
            if i % 30 == 0 {
                s["trim"] = json!({"events": [{"epoch_ms": T0 + i * 10_000, "released": 10 * MIB, "rss_before": 1, "rss_after": 0, "duration_ns": 1, "reason": "auto"}]});
            }
            if i > 1000 {
                s["findings"] = json!([{"id": "arena-sprawl", "severity": "warning", "title": "many arenas", "evidence": [format!("{i}")], "since_ms": T0 + 1000 * 10_000}]);
            }
            s.to_string()
        })
        .collect();
    let input_bytes: usize = lines.iter().map(|l| l.len() + 1).sum();
    let start = Instant::now();
    let page = render_timeline(&lines, "week").expect("page");
    let took = start.elapsed();
    println!(
        "{n} lines ({:.1} MiB of JSON lines) -> {:.0} KiB of HTML in {:.2?}",
        input_bytes as f64 / MIB as f64,
        page.len() as f64 / 1024.0,
        took
    );
    assert!(page.len() < 3 * MIB as usize, "page of {} bytes", page.len());
    // Generous for an unoptimised test build; the release build takes a fraction of this.
    assert!(took.as_secs() < 30, "took {took:?}");
    let data = embedded(&page);
    assert_eq!(data["samples"], n);
    assert_eq!(data["trims"]["grouped"], true);
    assert_eq!(data["trims"]["count"], 2016);
    let total: u64 = data["trims"]["marks"].as_array().expect("marks").iter().map(|m| m["n"].as_u64().unwrap_or(0)).sum();
    assert_eq!(total, 2016);
    assert_eq!(data["findings"].as_array().expect("findings").len(), 1);
}

#[test]
fn the_page_loads_nothing_from_elsewhere() {
    let page = render_timeline([line(1, T0, MIB), line(2, T0 + 10_000, MIB)], "self-contained").expect("page");
    let lower = page.to_ascii_lowercase();
    for needle in ["<link", " src=", "@import", "url(http", "fetch(", "xmlhttprequest", "<iframe", "<img"] {
        assert!(!lower.contains(needle), "page contains {needle}");
    }
    // The SVG namespace is a name, not a request; nothing else may name a URL.
    assert_eq!(lower.matches("http://").count(), lower.matches("http://www.w3.org/2000/svg").count());
    assert!(!lower.contains("https://"));
    assert!(page.contains("Content-Security-Policy\" content=\"default-src 'none'"));
}

#[test]
fn a_report_inventing_names_on_every_line_stays_bounded() {
    let lines = (0..5000u64).map(|i| {
        format!(r#"{{"kind":"sample","epoch_ms":{},"breakdown":{{"classes":{{"class_{i}":{{"rss":1}}}}}},"nmt":{{"categories":[{{"name":"cat {i}","committed":1}}]}}}}"#, T0 + i)
    });
    let mut tl = Timeline::default();
    for l in lines {
        tl.push_line(&l);
    }
    assert_eq!(tl.sample_count(), 5000);
    assert!(tl.columns.data.len() <= MAX_COLUMNS);
    let page = tl.render("names").expect("page");
    assert!(page.len() < 3 * MIB as usize);
}

#[test]
fn a_timeline_fed_for_ever_stays_bounded_and_keeps_the_rss_peak() {
    let mut t = Timeline::default();
    let n = 50_000u64;
    for i in 0..n {
        let arena = if i == 12_345 { 3000 * MIB } else { 100 * MIB + (i % 10) * MIB };
        let mut s: Value = serde_json::from_str(&line(i + 1, T0 + i * 10_000, arena)).expect("line");
        // Two trims per sample.
        s["trim"] = json!({"events": [
            {"epoch_ms": T0 + i * 10_000 + 1, "released": MIB, "rss_before": 3 * MIB, "rss_after": 2 * MIB, "duration_ns": 1000, "reason": "auto"},
            {"epoch_ms": T0 + i * 10_000 + 2, "released": 2 * MIB, "rss_before": 4 * MIB, "rss_after": 2 * MIB, "duration_ns": 1000, "reason": "auto"},
        ]});
        t.push_line(&s.to_string());
        t.thin(1000, 3000);
        assert!(t.sample_count() <= 1000, "{} samples after {i}", t.sample_count());
        assert!(t.trims.len() <= 3000, "{} trims after {i}", t.trims.len());
        assert!(t.trims_seen.len() <= 3000 + 2 * 60 + 2, "{} trim keys after {i}", t.trims_seen.len());
    }
    assert!(t.sample_count() >= 500, "{}", t.sample_count());
    // Each point stands for as many samples as any other: 50,000 into 500-1000 is 6 or 7 halvings.
    assert!((6..=7).contains(&t.thinned), "thinned {} times", t.thinned);
    let data = embedded(&t.render("bounded").expect("page"));
    let times: Vec<f64> = data["t"].as_array().expect("t").iter().filter_map(Value::as_f64).collect();
    // The whole run is covered, from its first minutes to its last.
    assert!(times[0] <= (T0 + 64 * 10_000) as f64, "starts at {}", times[0]);
    assert!(*times.last().expect("last") >= (T0 + (n - 64) * 10_000) as f64);
    let peak = series(chart(&data, "memory"), "lines", "RSS").into_iter().filter(|x| !x.is_nan()).fold(0.0, f64::max);
    assert_eq!(peak, (512 + 3000 + 286) as f64 * MIB as f64);
    // Every trim is still counted, with every byte it released.
    assert_eq!(data["trims"]["grouped"], true);
    assert_eq!(data["trims"]["count"], 2 * n);
    let marks = data["trims"]["marks"].as_array().expect("marks");
    let released: f64 = marks.iter().filter_map(|m| m["released"].as_f64()).sum();
    assert_eq!(released, (3 * n * MIB) as f64);
    assert_eq!(marks.iter().filter_map(|m| m["n"].as_u64()).sum::<u64>(), 2 * n);
    assert!(marks.iter().all(|m| m["max"].as_f64() == Some(2.0 * MIB as f64)));
    // Thinning is said, and the steady sampling does not read as pauses.
    let page = t.render("bounded").expect("page");
    assert!(page.contains("thinned to keep it small"), "no thinning line");
    assert_eq!(data["breaks"], json!([]));
}

#[test]
fn a_short_timeline_is_not_thinned() {
    let mut t = Timeline::default();
    for i in 0..100u64 {
        t.push_line(&line(i + 1, T0 + i * 10_000, MIB));
        t.thin(100, 100);
    }
    assert_eq!(t.sample_count(), 100);
    assert!(!t.render("short").expect("page").contains("thinned"));
}

/// A report line with a `sites` part whose strings try to break out of the page.
fn line_with_sites(seq: u64, epoch_ms: u64, status: &str, leak: u64) -> String {
    let mut v: Value = serde_json::from_str(&line(seq, epoch_ms, 100 * MIB)).expect("line");
    v["sites"] = json!({
        "status": status, "direct_sample_bytes": 262144,
        "direct": [{"site": "com.acme.Cache.fill(Cache.java:41)", "via": "java.nio.ByteBuffer.allocateDirect",
                    "frames": ["com.acme.Cache.fill(Cache.java:41)"], "live_bytes": 12 * MIB, "growth_bytes": 3 * MIB,
                    "sampled_buffers": 40}],
        "threads": [{"site": "evil.<script>alert(1)</script>.run(X.java:1)", "via": "java.lang.Thread.start",
                     "frames": [], "alive": 120, "growth": 110,
                     "names": [{"pattern": "worker-*\"><img src=x>", "alive": 120}]},
                    {"site": "other", "sites": 2, "alive": 5}],
        "threads_untracked": 14,
        "zip": [{"site": "com.acme.Ingest.read(Ingest.java:88)", "via": "java.util.zip.GZIPInputStream.<init>",
                 "frames": [], "kind": "inflater", "alive": leak, "pending": 3}],
    });
    v.to_string()
}

#[test]
fn the_last_samples_sites_render_as_escaped_tables() {
    let lines = [
        line_with_sites(1, T0, "on", 10),
        line_with_sites(3, T0 + 20_000, "on", 1412),
        // An earlier sample read later does not replace the latest, nor does one with sites off.
        line_with_sites(2, T0 + 10_000, "on", 77),
        line_with_sites(4, T0 + 30_000, "off", 5),
    ];
    let page = render_timeline(&lines, "sites").expect("page");
    let start = page.find("<section id=\"od-sites\">").expect("sites section");
    let sites = &page[start..start + page[start..].find("</section>").expect("end")];
    for want in [
        "<h3>Zip streams not ended</h3>",
        "<td>com.acme.Ingest.read(Ingest.java:88)</td><td>java.util.zip.GZIPInputStream.&lt;init&gt;</td><td>inflater</td><td class=\"n\">1412</td><td class=\"n\">3</td>",
        "<td>com.acme.Cache.fill(Cache.java:41)</td><td>java.nio.ByteBuffer.allocateDirect</td><td class=\"n\">12.0 MiB</td><td class=\"n\">+3.0 MiB</td>",
        "<td>evil.&lt;script&gt;alert(1)&lt;/script&gt;.run(X.java:1)</td>",
        "<td>worker-*&quot;&gt;&lt;img src=x&gt; (120)</td>",
        "<td>other (2 sites)</td>",
        "2026-",
    ] {
        assert!(sites.contains(want), "{want} not in {sites}");
    }
    assert!(!page.contains("<script>alert(1)") && !page.contains("<img src=x>"), "unescaped site text");
    assert!(!sites.contains(">77<"), "an earlier sample replaced the latest");

    // Without sites on, no section content.
    let page = render_timeline([line_with_sites(1, T0, "off", 1), line(2, T0 + 10_000, 100 * MIB)], "off").expect("page");
    assert!(page.contains("<section id=\"od-sites\"></section>"), "sites shown while off");
}

#[test]
fn evidence_items_as_the_report_writes_them_are_shown_as_key_and_value() {
    let line = json!({"schema": 1, "kind": "sample", "epoch_ms": T0, "findings": [{
        "id": "zip-unclosed", "severity": "warning", "title": "t",
        "evidence": [{"key": "site_1", "value": "com.acme.Ingest.read(Ingest.java:88)", "raw": null},
                     {"key": "inflaters_alive", "value": "1412", "raw": 1412.0}, 7, ["nested"], "plain"],
        "since_ms": T0}]});
    let l: super::lenient::Line = serde_json::from_value(line).expect("lenient");
    let f = &l.findings.0[0];
    let f = f.0.as_ref().expect("finding");
    assert_eq!(
        f.evidence.0,
        vec!["site_1: com.acme.Ingest.read(Ingest.java:88)".to_string(), "inflaters_alive: 1412".into(), "plain".into()]
    );
}

/// A report line with a `native_sites` part: a leaking site at `leak` bytes, a steady one, the
/// "other" row; strings that try to break out of the page.
fn line_with_native_sites(seq: u64, epoch_ms: u64, status: &str, leak: u64) -> String {
    let mut v: Value = serde_json::from_str(&line(seq, epoch_ms, 100 * MIB)).expect("line");
    v["native_sites"] = json!({
        "status": status, "sample_bytes": 524288, "since_ms": T0, "java_frames": true,
        "live_bytes": leak + 40 * MIB, "growth_bytes": leak,
        "sites": [
            {"id": 3, "label": "libleak.so leak_into_cache <- LeakyCache.put",
             "native": [{"library": "libleak.so", "symbol": "leak_into_cache", "offset": 42},
                        {"library": "libleak.so", "offset": 4096}],
             "java": ["LeakyCache.put(LeakyCache.java:12)", "<img src=x>.run(X.java:1)"],
             "thread": "worker-3", "live_bytes": leak, "growth_bytes": leak, "live_samples": 600, "allocated_bytes": 9 * leak},
            {"id": 4, "label": "libz.so.1 inflateInit2_ <- <script>alert(1)</script>", "native": [],
             "thread": "main", "live_bytes": 40 * MIB, "growth_bytes": 0, "live_samples": 80, "allocated_bytes": 80 * MIB},
            {"site": "other", "sites": 12, "live_bytes": 1234, "growth_bytes": 0}
        ]
    });
    v.to_string()
}

#[test]
fn the_last_samples_native_sites_render_as_a_table_and_a_chart() {
    let lines = [
        line_with_native_sites(1, T0, "on", 10 * MIB),
        line_with_native_sites(2, T0 + 10_000, "on", 310 * MIB),
        line_with_native_sites(3, T0 + 20_000, "off", 0),
    ];
    let page = render_timeline(&lines, "native").expect("page");
    let start = page.find("<section id=\"od-sites\">").expect("sites section");
    let sites = &page[start..start + page[start..].find("</section>").expect("end")];
    for want in [
        "<h2>Native call sites</h2>",
        "about 350.0 MiB live, one sample per 512.0 KiB allocated",
        "<tr><td><details><summary title=\"libleak.so leak_into_cache+0x2a&#10;libleak.so+0x1000&#10;LeakyCache.put(LeakyCache.java:12)&#10;&lt;img src=x&gt;.run(X.java:1)\">\
         libleak.so leak_into_cache &lt;- LeakyCache.put</summary><div class=\"frames\">libleak.so leak_into_cache+0x2a<br>",
        "</details></td><td class=\"n\">310.0 MiB</td><td class=\"n\">+310.0 MiB</td><td>worker-3</td></tr>",
        "<tr><td>libz.so.1 inflateInit2_ &lt;- &lt;script&gt;alert(1)&lt;/script&gt;</td><td class=\"n\">40.0 MiB</td><td class=\"n\">0 B</td><td>main</td></tr>",
        "<tr><td>other (12 sites)</td><td class=\"n\">1.2 KiB</td>",
    ] {
        assert!(sites.contains(want), "{want} not in {sites}");
    }
    assert!(!page.contains("<script>alert(1)") && !page.contains("<img src=x>"), "unescaped site text");
    // One line per site with its sampled live bytes in the chart data.
    let data = embedded(&page);
    let native = chart(&data, "native-sites");
    let v = series(native, "lines", "libleak.so leak_into_cache <- LeakyCache.put");
    assert!(v.contains(&((10 * MIB) as f64)) && v.contains(&((310 * MIB) as f64)), "{v:?}");
    assert!(native["lines"].as_array().expect("lines").iter().all(|l| l["label"] != "other"), "other is no site");

    // Without the sampler on, no native table nor chart.
    let page = render_timeline([line_with_native_sites(1, T0, "off", MIB), line(2, T0 + 10_000, 100 * MIB)], "off").expect("page");
    assert!(!page.contains("Native call sites"), "native sites shown while off");
}
