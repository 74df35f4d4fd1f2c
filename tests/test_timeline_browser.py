"""The timeline page in a real browser: the jar's `html` command renders a recorded report and
headless Chromium loads it. The page must run without a script error, reach for nothing outside
itself, draw one path per series and one mark per trim the report holds, list its findings, and
paint something visible.

The fixture (fixtures/timeline/scenario.jsonl) is the report of one run of the NativeGrowth
workload on JDK 17 with NMT, interval=200ms, trim=auto,trimRetained=8m,trimMinInterval=200ms and
the phases await=2 deflaters=400 await=+3 burst=16 gc await=+3 direct=32 await=+2 burst=16 gc
await=+3 trim await=+3: unended Deflaters (zip-unclosed), malloc bursts that the policy trims,
then one manual trim."""

import json
import shutil
import struct
import subprocess
import zlib
from html.parser import HTMLParser
from pathlib import Path

import pytest

from jdks import java

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "timeline" / "scenario.jsonl"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                  "--disable-quic", "--disable-component-update", "--disable-sync", "--disable-extensions",
                  "--hide-scrollbars", "--mute-audio"]
NMT_TOP = 8


def chromium():
    path = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    if not path:
        pytest.fail("chromium is missing: scripts/install-deps.sh installs it (Debian package 'chromium')")
    return path


def run_chromium(tmp_path, *args):
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    cmd = [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", *args]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, f"{' '.join(cmd)} exited {p.returncode}\n{p.stderr[-4000:]}"
    return p


# --- what the fixture should draw --------------------------------------------------------------

def is_num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def expected(samples):
    """Charts by id with their series count, the distinct trims and findings, read from the
    report the way the page's documentation describes it."""
    def any_num(get):
        for s in samples:
            try:
                if is_num(get(s)):
                    return True
            except (KeyError, TypeError, AttributeError):
                pass
        return False

    charts = {}
    classes = {name for s in samples for name, c in ((s.get("breakdown") or {}).get("classes") or {}).items()
               if is_num((c or {}).get("rss"))}
    memory = len(classes) + any_num(lambda s: s["totals"]["rss"]) + any_num(lambda s: s["cgroup"]["limit"])
    if memory:
        charts["memory"] = memory
    malloc = sum(any_num(lambda s, k=k: s["malloc"][k]) for k in ("retained", "retained_resident", "in_use", "trimmable_max", "arena_count"))
    if malloc:
        charts["malloc"] = malloc
    nmt = {c["name"] for s in samples for c in ((s.get("nmt") or {}).get("categories") or [])
           if c.get("name") and c["name"] != "Java Heap" and is_num(c.get("committed"))}
    if nmt:
        charts["nmt"] = min(NMT_TOP, len(nmt))
    zip_ = sum(any_num(lambda s, side=side, k=k: s["zip"][side][k])
               for side in ("inflaters", "deflaters") for k in ("alive", "pending_cleanup"))
    zip_ += any_num(lambda s: s["zip"]["estimated_native_bytes"])
    if zip_:
        charts["zip"] = zip_
    # Later samples may repeat a trim; one trim is one mark.
    trims = {(e.get("at_ms", e.get("epoch_ms")), e.get("released"), e.get("rss_before"))
             for s in samples for e in ((s.get("trim") or {}).get("events") or [])}
    findings = {f["id"]: f for s in samples for f in s.get("findings") or []}
    return charts, trims, findings


# --- the dumped DOM ----------------------------------------------------------------------------

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class Node:
    def __init__(self, tag, attrs, parent):
        self.tag, self.attrs, self.parent, self.children, self.text = tag, dict(attrs), parent, [], ""

    def walk(self):
        yield self
        for c in self.children:
            yield from c.walk()

    def find(self, pred):
        return [n for n in self.walk() if pred(n)]

    def classes(self):
        return (self.attrs.get("class") or "").split()

    def all_text(self):
        return self.text + "".join(c.all_text() for c in self.children)


class Tree(HTMLParser):
    def __init__(self, html):
        super().__init__(convert_charrefs=True)
        self.root = self.cur = Node("#root", [], None)
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        n = Node(tag, attrs, self.cur)
        self.cur.children.append(n)
        if tag not in VOID:
            self.cur = n

    def handle_startendtag(self, tag, attrs):
        self.cur.children.append(Node(tag, attrs, self.cur))

    def handle_endtag(self, tag):
        n = self.cur
        while n is not None and n.tag != tag:
            n = n.parent
        if n is not None and n.parent is not None:
            self.cur = n.parent

    def handle_data(self, data):
        self.cur.text += data


# --- the screenshot ----------------------------------------------------------------------------

def png_pixels(path):
    """Width, height and the rows of an 8-bit RGB or RGBA PNG, unfiltered (stdlib only)."""
    data = Path(path).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = header
    assert depth == 8 and colour in (2, 6) and interlace == 0, header
    bpp = 3 if colour == 2 else 4
    raw, stride = zlib.decompress(idat), width * bpp
    rows, prev = [], bytearray(stride)
    for y in range(height):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        if f == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 0xFF
        elif f == 2:
            line = bytearray((a + b) & 0xFF for a, b in zip(line, prev))
        elif f == 3:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 0xFF
        elif f == 4:
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b, c = prev[i], prev[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        rows.append(bytes(line))
        prev = line
    return width, height, bpp, rows


# --- the test ----------------------------------------------------------------------------------

def render(agent_jar, tmp_path):
    page = tmp_path / "timeline.html"
    p = subprocess.run([java(17), "-jar", str(agent_jar), "html", str(FIXTURE), "-o", str(page)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return page


def test_the_fixture_is_a_small_real_scenario():
    assert FIXTURE.stat().st_size < 300 * 1024
    samples = [json.loads(l) for l in FIXTURE.read_text().splitlines() if l.strip()]
    charts, trims, findings = expected(samples)
    assert len(samples) >= 10
    assert set(charts) == {"memory", "malloc", "nmt", "zip"}, charts
    assert len(trims) >= 2
    assert {e["reason"] for s in samples for e in (s["trim"] or {}).get("events") or []} >= {"policy", "manual"}
    assert "zip-unclosed" in findings


def test_the_page_runs_offline_and_draws_every_series_and_trim(agent_jar, tmp_path):
    page = render(agent_jar, tmp_path)
    html = page.read_text()
    samples = [json.loads(l) for l in FIXTURE.read_text().splitlines() if l.strip()]
    charts, trims, findings = expected(samples)

    p = run_chromium(tmp_path, "--window-size=1400,1000", "--dump-dom", page.as_uri())
    console = p.stderr
    assert "Uncaught" not in console, console[-4000:]
    # Every load the page attempted would break its Content-Security-Policy and be logged.
    assert "Content Security Policy" not in console and "Refused to" not in console, console[-4000:]
    dom = Tree(p.stdout).root
    body = dom.find(lambda n: n.tag == "body")
    assert body, p.stdout[:2000]
    body = body[0]
    assert body.attrs.get("data-errors") is None, f"{body.attrs['data-errors']} uncaught script errors"
    assert body.attrs.get("data-drawn") == str(len(charts)), body.attrs

    # Nothing outside the page: no source, stylesheet, frame or link to another origin.
    for n in dom.walk():
        for attr in ("src", "href", "xlink:href", "action", "data", "poster", "srcset"):
            v = n.attrs.get(attr)
            if v is not None:
                assert v.startswith("#") or v.startswith("data:"), f"<{n.tag} {attr}={v!r}>"
        assert n.tag not in ("iframe", "link", "img", "object", "embed"), n.tag
    for n in dom.find(lambda n: n.tag in ("script", "style")):
        assert "src" not in n.attrs
        assert "@import" not in n.all_text() and "url(http" not in n.all_text()
    assert "Content-Security-Policy" in html and "default-src 'none'" in html

    drawn = dom.find(lambda n: "chart" in n.classes())
    assert len(drawn) == len(charts)
    trim_charts = 0
    for chart, (cid, series) in zip(drawn, charts.items()):
        title = chart.find(lambda n: n.tag == "h2")[0].all_text()
        plot = [n for n in chart.find(lambda n: n.tag == "g" and "clip-path" in n.attrs)]
        assert len(plot) == 1, title
        shapes = plot[0].find(lambda n: n.tag in ("path", "circle"))
        assert len(shapes) == series, f"{cid} ({title}): {len(shapes)} series drawn, {series} in the report"
        legend = chart.find(lambda n: "legend" in n.classes())[0]
        assert len([c for c in legend.children if c.tag == "span"]) == series, title
        marks = chart.find(lambda n: n.tag == "path" and "trim" in n.classes())
        if cid in ("memory", "malloc"):
            trim_charts += 1
            assert len(marks) == len(trims), f"{title}: {len(marks)} trim marks, {len(trims)} trims"
            assert len(chart.find(lambda n: "trimline" in n.classes())) == len(trims), title
        else:
            assert marks == [], title
    assert trim_charts == 2
    labels = dom.find(lambda n: "trimlabel" in n.classes())
    assert labels and all("\u2212" in l.all_text() for l in labels)

    cards = dom.find(lambda n: "finding" in n.classes())
    assert len(cards) == len(findings)
    titles = [c.find(lambda n: "title" in n.classes())[0].all_text() for c in cards]
    assert findings["zip-unclosed"]["title"] in titles, titles

    shot = tmp_path / "timeline.png"
    run_chromium(tmp_path, "--window-size=1400,1000", f"--screenshot={shot}", page.as_uri())
    width, height, bpp, rows = png_pixels(shot)
    assert (width, height) == (1400, 1000)
    colours, blank = set(), 0
    for row in rows[::4]:
        for x in range(0, width * bpp, 4 * bpp):
            px = row[x:x + 3]
            colours.add(px)
            blank += px == b"\xff\xff\xff"
    sampled = len(rows[::4]) * len(range(0, width * bpp, 4 * bpp))
    assert len(colours) > 40, f"{len(colours)} colours: a blank page?"
    assert blank < 0.9 * sampled, f"{blank} of {sampled} sampled pixels are white"


def test_native_call_sites_draw_a_line_per_site_and_a_table(agent_jar, tmp_path):
    """The fixture with a synthetic `native_sites` part on every sample: a site that grows one MiB
    per sample and a steady one. The page draws one more chart, one line per site, and the table
    whose label opens onto the site's frames."""
    samples = [json.loads(l) for l in FIXTURE.read_text().splitlines() if l.strip()]
    leak = "libleak.so leak_into_cache <- LeakyCache.put"
    steady = "libz.so.1 inflateInit2_ <- java.util.zip.Inflater.init"
    for i, s in enumerate(samples):
        s["native_sites"] = {
            "status": "on", "sample_bytes": 524288, "since_ms": samples[0]["epoch_ms"], "java_frames": True,
            "live_bytes": (i + 41) << 20, "growth_bytes": i << 20,
            "sites": [
                {"id": 3, "label": leak, "thread": "worker-3", "live_bytes": (i + 1) << 20, "growth_bytes": i << 20,
                 "native": [{"library": "libleak.so", "symbol": "leak_into_cache", "offset": 42}],
                 "java": ["LeakyCache.put(LeakyCache.java:12)"], "live_samples": i, "allocated_bytes": (i + 1) << 20},
                {"id": 4, "label": steady, "thread": "main", "live_bytes": 40 << 20, "growth_bytes": 0,
                 "native": [{"library": "libz.so.1", "symbol": "inflateInit2_", "offset": 16}],
                 "live_samples": 80, "allocated_bytes": 80 << 20},
                {"site": "other", "sites": 0, "live_bytes": 0, "growth_bytes": 0},
            ]}
    report = tmp_path / "native.jsonl"
    report.write_text("".join(json.dumps(s) + "\n" for s in samples))
    page = tmp_path / "native.html"
    p = subprocess.run([java(17), "-jar", str(agent_jar), "html", str(report), "-o", str(page)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    charts, _, _ = expected(samples)

    p = run_chromium(tmp_path, "--window-size=1400,1000", "--dump-dom", page.as_uri())
    assert "Uncaught" not in p.stderr and "Refused to" not in p.stderr, p.stderr[-4000:]
    dom = Tree(p.stdout).root
    body = dom.find(lambda n: n.tag == "body")[0]
    assert body.attrs.get("data-errors") is None, body.attrs
    assert body.attrs.get("data-drawn") == str(len(charts) + 1), body.attrs
    native = [c for c in dom.find(lambda n: "chart" in n.classes())
              if c.find(lambda n: n.tag == "h2")[0].all_text().startswith("Native call sites")]
    assert len(native) == 1
    plot = native[0].find(lambda n: n.tag == "g" and "clip-path" in n.attrs)[0]
    assert len(plot.find(lambda n: n.tag in ("path", "circle"))) == 2
    legend = native[0].find(lambda n: "legend" in n.classes())[0].all_text()
    assert leak in legend and steady in legend, legend

    table = dom.find(lambda n: n.tag == "table" and "native-sites" in n.classes())
    assert len(table) == 1
    rows = [r for r in table[0].find(lambda n: n.tag == "tr") if r.find(lambda n: n.tag == "td")]
    assert len(rows) == 3, [r.all_text() for r in rows]
    first = rows[0].find(lambda n: n.tag == "td")
    assert first[0].find(lambda n: n.tag == "summary")[0].all_text() == leak
    assert "LeakyCache.put(LeakyCache.java:12)" in first[0].find(lambda n: "frames" in n.classes())[0].all_text()
    assert [c.all_text() for c in first[1:]] == [f"{len(samples)}.0 MiB", f"+{len(samples) - 1}.0 MiB", "worker-3"]
    assert rows[2].find(lambda n: n.tag == "td")[0].all_text() == "other (0 sites)"
