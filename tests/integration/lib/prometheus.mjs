// A strict parser for the Prometheus text exposition format (0.0.4): it throws on anything a
// Prometheus server would reject or that breaks the format's rules (names, labels, escapes,
// TYPE before samples, families contiguous, no duplicate series, histogram buckets cumulative
// with +Inf equal to _count).
const METRIC = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

function parseValue(text, line) {
  if (text === '+Inf') return Infinity;
  if (text === '-Inf') return -Infinity;
  if (text === 'NaN') return NaN;
  if (!/^[-+]?(\d+\.?\d*([eE][-+]?\d+)?|\.\d+([eE][-+]?\d+)?)$/.test(text)) throw new Error(`bad value "${text}" in: ${line}`);
  return Number(text);
}

function parseLabels(text, line) {
  const labels = {};
  let i = 0;
  while (i < text.length) {
    const eq = text.indexOf('=', i);
    if (eq < 0) throw new Error(`bad labels in: ${line}`);
    const name = text.slice(i, eq);
    if (!LABEL.test(name)) throw new Error(`bad label name "${name}" in: ${line}`);
    if (text[eq + 1] !== '"') throw new Error(`label value must be quoted in: ${line}`);
    let j = eq + 2;
    let value = '';
    for (;;) {
      if (j >= text.length) throw new Error(`unterminated label value in: ${line}`);
      const c = text[j];
      if (c === '\\') {
        const n = text[j + 1];
        if (n === 'n') value += '\n';
        else if (n === '\\' || n === '"') value += n;
        else throw new Error(`bad escape in: ${line}`);
        j += 2;
        continue;
      }
      if (c === '"') break;
      value += c;
      j++;
    }
    if (name in labels) throw new Error(`duplicate label ${name} in: ${line}`);
    labels[name] = value;
    i = j + 1;
    if (text[i] === ',') i++;
    else if (i < text.length) throw new Error(`expected ',' in: ${line}`);
  }
  return labels;
}

const key = (name, labels) => `${name}{${Object.keys(labels).sort().map((k) => `${k}=${JSON.stringify(labels[k])}`).join(',')}}`;

export function parsePrometheus(text) {
  if (!text.endsWith('\n')) throw new Error('exposition must end with a newline');
  const types = new Map();
  const helps = new Set();
  const series = new Map();
  const finished = new Set();
  let current = null;
  const familyOf = (name) => {
    for (const suffix of ['_bucket', '_sum', '_count']) {
      const base = name.slice(0, -suffix.length);
      if (name.endsWith(suffix) && types.get(base) === 'histogram') return base;
    }
    return name;
  };
  for (const line of text.split('\n')) {
    if (line === '') continue;
    if (line.startsWith('#')) {
      const m = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
      if (!m) continue;  // plain comment
      const [, kind, name, rest] = m;
      if (!METRIC.test(name)) throw new Error(`bad metric name in: ${line}`);
      if (kind === 'TYPE') {
        if (types.has(name)) throw new Error(`second TYPE for ${name}`);
        if (!TYPES.has(rest)) throw new Error(`bad type in: ${line}`);
        if (finished.has(name) || series.has(name)) throw new Error(`TYPE after samples for ${name}`);
        types.set(name, rest);
      } else {
        if (helps.has(name)) throw new Error(`second HELP for ${name}`);
        helps.add(name);
      }
      continue;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)( -?\d+)?$/.exec(line);
    if (!m) throw new Error(`bad sample line: ${line}`);
    const [, name, , labelText, valueText] = m;
    const labels = labelText ? parseLabels(labelText, line) : {};
    const family = familyOf(name);
    if (family !== current) {
      if (finished.has(family)) throw new Error(`samples of ${family} are not contiguous`);
      if (current) finished.add(current);
      current = family;
    }
    const k = key(name, labels);
    if (series.has(k)) throw new Error(`duplicate series ${k}`);
    series.set(k, parseValue(valueText, line));
  }
  // Histograms: cumulative buckets, +Inf present and equal to _count.
  for (const [name, type] of types) {
    if (type !== 'histogram') continue;
    const groups = new Map();
    for (const [k, v] of series) {
      if (!k.startsWith(`${name}_bucket{`)) continue;
      const labels = JSON.parse(`{${k.slice(name.length + 8, -1).replace(/(\w+)=/g, '"$1":')}}`);
      const le = labels.le;
      if (le === undefined) throw new Error(`${name} bucket without le`);
      delete labels.le;
      const g = key('', labels);
      if (!groups.has(g)) groups.set(g, { labels, buckets: [] });
      groups.get(g).buckets.push([le === '+Inf' ? Infinity : Number(le), v]);
    }
    for (const { labels, buckets } of groups.values()) {
      buckets.sort((a, b) => a[0] - b[0]);
      for (let i = 1; i < buckets.length; i++) {
        if (buckets[i][1] < buckets[i - 1][1]) throw new Error(`${name} buckets not cumulative`);
      }
      const inf = buckets.at(-1);
      if (inf[0] !== Infinity) throw new Error(`${name} lacks the +Inf bucket`);
      const count = series.get(key(`${name}_count`, labels));
      if (count !== inf[1]) throw new Error(`${name}: +Inf bucket ${inf[1]} != _count ${count}`);
      if (!series.has(key(`${name}_sum`, labels))) throw new Error(`${name} lacks _sum`);
    }
  }
  return {
    series,
    type: (name) => types.get(name),
    value(name, labels = {}) {
      const k = key(name, labels);
      if (!series.has(k)) throw new Error(`no series ${k}`);
      return series.get(k);
    },
  };
}
