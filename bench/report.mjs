// Renders bench/.work/results.json (written by bench/bench.mjs) as the markdown report in bench/results/.
//   node bench/report.mjs [bench/.work/results.json]   # re-render to stdout

const fmt = (x, digits = 1) => (typeof x === 'number' && Number.isFinite(x) ? x.toFixed(digits) : '—');
const ms = (x) => (typeof x === 'number' && Number.isFinite(x) ? `${fmt(x, x < 10 ? 1 : 0)} ms` : '—');
const ratio = (a, b) => (Number.isFinite(a) && Number.isFinite(b) && b > 0 ? a / b : NaN);
const r2 = (x) => (Number.isFinite(x) ? x.toFixed(2) : '—');
const mib = (kb) => (Number.isFinite(kb) ? `${(kb / 1024).toFixed(1)} MiB` : '—');
const yes = (ok) => (ok === undefined ? 'n/a' : ok ? '**met**' : '**missed**');

function actions(byAction) {
  if (!byAction) return '—';
  return Object.entries(byAction)
    .map(([k, n]) => `${k.split(':').pop()}${n > 1 ? `×${n}` : ''}`)
    .join(', ');
}

// Issue 14's goals for the login path and the agent (ratios against keymaker 1.1.0, one run).
export const NET_TARGETS = {
  agentRatio: 0.1,
  compatRatio: 0.25,
  wavesPerLogin: 1,
  requestsBothCalls: 3,
  agentHandshakes: 0,
  getentRatio: 2,
  agentRssMiB: 60,
};

const MODE_LABEL = { agent: 'ours, agent mode', compat: 'ours, compat mode' };

/**
 * The login command through tools/netmodel (TLS, RTT), interleaved with 1.1.0: one row block per RTT,
 * a column per mode, the ratio of each of ours to 1.1.0, and the goal.
 */
export function renderNetlogin(d, push, row) {
  const n = d.netlogin;
  const T = NET_TARGETS;
  const rtts = Object.keys(n.rtts).map(Number);
  const v1 = `keymaker ${d.versions.keymaker1}`;
  // agent mode first (the new path), then compat.
  const modes = [...n.rtts[rtts[0]].modes].sort((a, b) => (a === 'agent' ? -1 : b === 'agent' ? 1 : 0));
  const hasAgent = modes.includes('agent');
  push('## Login command over a modelled network (TLS, RTT), interleaved with ' + v1, '');
  push(
    `Each tool reaches moto through \`tools/netmodel\`: a relay delaying each direction by RTT/2 per segment, then a TLS terminator with a throw-away CA made for this run, keeping connections alive as IAM does, then the counting proxy (RTT 0 = the local emulator behind the TLS terminator). ours, compat mode: the AuthorizedKeysCommand \`keymaker install --mode compat\` wrote (\`${n.installed.command}\` from \`sshd -T\`, a fresh process per login), cache warm (as after the scheduled sync), with \`NODE_EXTRA_CA_CERTS\` for the test CA.${hasAgent ? ` ours, agent mode: \`keymaker install --mode agent\` on the same sandbox (the agent started detached, warm: one login before the rounds), its AuthorizedKeysCommand \`${n.agent.command}\` (a curl script on the agent's socket) with sshd's reset environment and nothing added; the agent serves only names with no local account, so it logs in ${n.agent.loginUser}, an IAM-only user with alice's key set; agent logins are at least 5 s apart (sshd's second call is answered from a 5 s cache, which must not answer the next login).` : ''} Both as the AuthorizedKeysCommandUser \`${n.installed.user}\`; ${v1}: as root with \`AWS_CA_BUNDLE\`. One login = sshd's two calls: with \`%f\`, then without (1.1.0 takes \`%u\` only); "login command" times the first. ${d.args.netRuns} rounds per RTT, the order alternating each round; the ratio is ours / ${v1} per round, then its median (p95 rows: p95 / p95).`,
    '',
  );
  const cols = modes.map((m) => MODE_LABEL[m] ?? m);
  row('RTT', 'figure', ...cols, v1, ...modes.map((m) => `ratio ${m}`), 'target');
  row('---', '---', ...modes.map(() => '---:'), '---:', ...modes.map(() => '---:'), '---');
  for (const rtt of rtts) {
    const r = n.rtts[rtt];
    const g = r.orig;
    const at = `${rtt} ms`;
    const line = (label, get, show, ratios, target = '') =>
      row(
        at,
        label,
        ...modes.map((m) => show(get(r[m]))),
        show(get(g)),
        ...modes.map((m) => ratios?.(r[m]) ?? ''),
        target,
      );
    const count = (x) => fmt(x, 0);
    line(
      'login command, median',
      (o) => o.wallMs.median,
      ms,
      (o) => r2(o.roundRatio?.median),
      `agent ≤ ${T.agentRatio} ×, compat ≤ ${T.compatRatio} ×`,
    );
    line(
      'login command, p95',
      (o) => o.wallMs.p95,
      ms,
      (o) => r2(ratio(o.wallMs.p95, g.wallMs.p95)),
    );
    line('second call of the login, median', (o) => o.secondMs?.median, ms);
    line('IAM/STS requests, first call', (o) => o.requests.median, count);
    line(
      'IAM/STS requests per login, both calls',
      (o) => o.both?.requests.median,
      count,
      undefined,
      `≤ ${T.requestsBothCalls} (1.1.0: 14)`,
    );
    line(
      'IAM round trips (waves), first call',
      (o) => o.waves.median,
      count,
      undefined,
      `${T.wavesPerLogin} (1.1.0: 7)`,
    );
    line('IAM round trips, both calls', (o) => o.both?.waves.median, count);
    line('TCP connections per login, both calls', (o) => o.both?.connections.median, count);
    line(
      'TLS handshakes per login (ClientHello), both calls',
      (o) => o.both?.clientHellos.median,
      count,
      undefined,
      `agent, warm: ${T.agentHandshakes}`,
    );
    line(
      'right keys, every run',
      (o) => o.allOk,
      (ok) => (ok ? 'yes' : 'NO'),
    );
  }
  const first = n.rtts[rtts[0]];
  row(
    '',
    'requests of the first call',
    ...modes.map((m) => actions(first[m].byAction)),
    actions(first.orig.byAction),
    ...modes.map(() => ''),
    '',
  );
  push('');
  if (n.agent?.memoryAfterRounds)
    push(`The agent's VmRSS after these rounds: ${mib(n.agent.memoryAfterRounds.rssKb)}.`, '');
}

/** `getent passwd` through the agent vs a files user, and the agent's memory with every seeded user resolved. */
export function renderAgentNss(d, push, row) {
  const a = d.agentNss;
  const T = NET_TARGETS;
  const g = a.getent;
  const m = a.memory ?? {};
  push('## Agent mode: NSS answers and memory', '');
  push(
    `A sandbox of its own: \`keymaker install --mode agent\` straight on the counting proxy (no network model), role \`${d.seed.openRole ?? 'bench-agent-open'}\` (no required group, so every seeded user can resolve), nsswitch \`${a.nsswitchPasswd?.replace(/\s+/g, ' ')}\`, the real libnss-systemd (\`${a.nssSystemd?.split('\n')[0]}\`). \`getent passwd ${a.servedUser?.name}\` (served by the agent, warm) vs \`getent passwd ${a.filesUser?.name}\` (a files user), ${g.runs} rounds interleaved, a process each (fork+exec included), sshd's PATH only; ratio = median of the per-round ratios. Memory: VmRSS of the agent process from /proc/PID/status.${m.floodGuardPatch ? ` For "1,000 users resolved" the installed agent is replaced by the same bundle and command line with one constant changed (flood guard ${m.floodGuardPatch}): the agent admits 20 new names at once, then 12 per minute, so 1,000 resolutions would take 80 minutes. Every seeded user is then asked for once over the agent's userdb socket (Varlink \`GetUserRecord\`, what libnss-systemd sends; 8 at a time, asked again while the agent answers "not yet").` : ''}`,
    '',
  );
  row('figure', 'agent', 'files user / baseline', 'ratio', 'target');
  row('---', '---:', '---:', '---:', '---');
  row(
    '`getent passwd NAME`, median',
    ms(g.agent.median),
    ms(g.files.median),
    r2(g.roundRatio.median),
    `≤ ${T.getentRatio} × a files lookup`,
  );
  row('`getent passwd NAME`, p95', ms(g.agent.p95), ms(g.files.p95), r2(ratio(g.agent.p95, g.files.p95)), '');
  row('right answer, every run', g.allOk ? 'yes' : 'NO', g.allOk ? 'yes' : 'NO', '', '');
  row('agent VmRSS, just installed (config loaded, 1 user)', mib(a.memoryStarted?.rssKb), '', '', '');
  row('agent VmRSS after the getent rounds', mib(a.memoryInstalledAfterGetent?.rssKb), '', '', '');
  if (m.unavailable) {
    row('agent VmRSS, 1,000 users resolved', `not measured: ${m.unavailable}`, '', '', `≤ ${T.agentRssMiB} MiB`);
  } else {
    row('agent VmRSS before resolving (flood guard raised)', mib(m.started?.rssKb), '', '', '');
    row(
      `agent VmRSS, ${m.resolved} of ${m.users} users resolved`,
      mib(m.after?.rssKb),
      '',
      '',
      `≤ ${T.agentRssMiB} MiB`,
    );
    row('agent VmHWM (peak) then', mib(m.after?.hwmKb), '', '', '');
    // What the RSS is: anonymous (heap, malloc, stacks: the agent's own) vs file pages (the node binary's code and
    // data, shared with every node process and reclaimable): the file part bounds how low VmRSS can go.
    if (m.after?.anonKb !== undefined)
      row(
        'of which anonymous / file-backed (RssAnon / RssFile), before → after',
        `${mib(m.started?.anonKb)} / ${mib(m.started?.fileKb)} → ${mib(m.after.anonKb)} / ${mib(m.after.fileKb)}`,
        '',
        '',
        '',
      );
    row(
      `resolving ${m.users} users: wall, the agent's CPU time, IAM requests`,
      `${ms(m.resolveMs)}, ${ms(m.resolveCpuMs)} CPU, ${fmt(m.requests, 0)} (${actions(m.byAction)})`,
      '',
      '',
      '',
    );
    if (m.refused?.length)
      row(
        'not resolved',
        `${m.refused.map(([k, v]) => `${k.split('.').pop()}: ${v}`).join(', ')}${m.notResolved?.length ? ` (${m.notResolved.map((x) => `\`${x.replace(/\|/g, '\\|')}\``).join('; ')})` : ''}`,
        '',
        '',
        '',
      );
    if (m.nodeFlags?.length)
      row('node flags of that agent (`BENCH_AGENT_NODE_FLAGS`)', `\`${m.nodeFlags.join(' ')}\``, '', '', '');
    if (m.env?.length) row('environment of that agent (`BENCH_AGENT_ENV`)', `\`${m.env.join(' ')}\``, '', '', '');
    if (m.majorGcs?.length)
      row(
        'its last full collections (`--trace-gc`): heap used (committed) before → after, MB',
        m.majorGcs
          .map((l) => /([\d.]+ ms): (Mark-Compact [\d.]+ \([\d.]+\) -> [\d.]+ \([\d.]+\) MB)/.exec(l))
          .map((x) => (x ? `${x[1]}: ${x[2]}` : '?'))
          .join('; '),
        '',
        '',
        '',
      );
    if (m.caches)
      row("agent's caches then (its /status)", `users ${m.caches.users}, negative ${m.caches.negative}`, '', '', '');
  }
  push('');
}

/** Issue 14's goals, for the Targets table. */
export function netTargetRows(d, row) {
  const T = NET_TARGETS;
  const n = d.netlogin;
  if (!n) return;
  const rtts = Object.keys(n.rtts).map(Number);
  const far = rtts.filter((r) => r > 0);
  const modes = n.rtts[rtts[0]].modes;
  for (const mode of ['agent', 'compat'].filter((m) => modes.includes(m))) {
    const goal = mode === 'agent' ? T.agentRatio : T.compatRatio;
    const rs = far.map((rtt) => n.rtts[rtt][mode].roundRatio?.median);
    row(
      `login command, ${mode} mode, at ${far.join(' and ')} ms RTT ≤ ${goal} × keymaker 1.1.0`,
      far
        .map(
          (rtt, i) =>
            `${rtt} ms: ${r2(rs[i])} (${ms(n.rtts[rtt][mode].wallMs.median)} vs ${ms(n.rtts[rtt].orig.wallMs.median)})`,
        )
        .join('; '),
      yes(rs.length > 0 && rs.every((x) => x <= goal)),
    );
  }
  const lead = modes.includes('agent') ? 'agent' : modes[0];
  const all = rtts.map((rtt) => n.rtts[rtt][lead]);
  const maxOf = (get) => Math.max(...all.map(get));
  row(
    `IAM round trips per login (warm), ${lead} mode = ${T.wavesPerLogin}`,
    `${fmt(
      maxOf((o) => o.waves.max),
      0,
    )} (max over every run); 1.1.0: ${fmt(n.rtts[rtts[0]].orig.waves.median, 0)}`,
    yes(maxOf((o) => o.waves.max) <= T.wavesPerLogin),
  );
  row(
    `IAM requests per login, both sshd calls, ${lead} mode ≤ ${T.requestsBothCalls}`,
    `${fmt(
      maxOf((o) => o.both?.requests.max),
      0,
    )} (max); 1.1.0: ${fmt(n.rtts[rtts[0]].orig.both?.requests.median, 0)}`,
    yes(maxOf((o) => o.both?.requests.max) <= T.requestsBothCalls),
  );
  if (modes.includes('agent'))
    row(
      `TLS handshakes per login, agent mode warm = ${T.agentHandshakes}`,
      `${fmt(
        maxOf((o) => o.both?.clientHellos.max),
        0,
      )} (max over both calls of every run); TCP connections ${fmt(
        maxOf((o) => o.both?.connections.max),
        0,
      )}`,
      yes(maxOf((o) => o.both?.clientHellos.max) <= T.agentHandshakes),
    );
  const a = d.agentNss;
  if (a) {
    row(
      `\`getent passwd\` through the agent ≤ ${T.getentRatio} × a files lookup`,
      `${r2(a.getent.roundRatio.median)} × (${ms(a.getent.agent.median)} vs ${ms(a.getent.files.median)})`,
      yes(a.getent.roundRatio.median <= T.getentRatio),
    );
    const m = a.memory ?? {};
    row(
      `memory of the agent, 1,000 cached users (reported; goal ≤ ${T.agentRssMiB} MiB RSS)`,
      m.unavailable
        ? `not measured (${m.unavailable}); just installed: ${mib(a.memoryStarted?.rssKb)}`
        : `${mib(m.after?.rssKb)} VmRSS with ${m.resolved} users resolved (${mib(m.started?.rssKb)} before; installed agent with 1 user: ${mib(a.memoryStarted?.rssKb)})`,
      m.unavailable ? 'not measured' : yes(m.after?.rssKb / 1024 <= T.agentRssMiB),
    );
  }
}

export function renderReport(d) {
  const L = d.lookup;
  const z = L.zero;
  const dl = L.delayed;
  const so = d.syncOurs;
  const sg = d.syncOrig;
  const oursSync = so.first?.available !== false;
  const lines = [];
  const push = (...xs) => lines.push(...xs);
  const row = (...cells) => push(`| ${cells.join(' | ')} |`);

  const when = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  push(`# Keymaker benchmark: TypeScript vs keymaker ${d.versions.keymaker1 ?? '1.x'}`, '');
  push(
    `Produced ${when} by \`${d.command ?? 'npm run bench'}\` (whole run ${fmt(d.totalSeconds, 0)} s), commit \`${d.versions.commit}\`${d.versions.dirty ? ' with uncommitted changes under packages/' : ''}.`,
  );
  if (d.loadAverageStart || d.loadAverage)
    push(
      `Load average (1, 5, 15 min) at the start ${(d.loadAverageStart ?? []).map((x) => x.toFixed(2)).join(' / ') || '—'}, at the end ${(d.loadAverage ?? []).map((x) => x.toFixed(2)).join(' / ') || '—'} on ${d.machine.nproc} CPUs: on a loaded, shared machine compare the ratios of this run, not its absolute figures.`,
    );
  push(
    'Both tools ran in the same run, on the same machine, against the same moto server through the same counting proxy (`bench/proxy.mjs`); see `bench/README.md` for what each figure means.',
    '',
  );

  push('## Machine and versions', '');
  row('item', 'value');
  row('---', '---');
  row('CPU', `${d.machine.cpu}, ${d.machine.nproc} cores (nproc)`);
  row('memory', d.machine.memory);
  row('kernel / OS', `${d.machine.kernel} / ${d.machine.os}`);
  row('node', d.versions.node);
  row(
    'ours',
    `${d.versions.ours}; AWS SDK for JS ${d.versions.awsSdk}; host bundle ${fmt(d.bundle.bytes / 1024, 0)} KiB`,
  );
  row(
    'original',
    `keymaker ${d.versions.keymaker1} (PyPI), Python ${d.versions.python}, boto3 ${d.versions.boto3}, botocore ${d.versions.botocore}`,
  );
  row('moto', `moto[server] ${d.versions.moto}`);
  row(
    'account',
    `${d.seed.users} IAM users, ${d.seed.prefixedGroups} groups \`keymaker_g00..\` × ${d.seed.membersPerGroup.join('/')} members, alice: 2 active + 1 inactive ed25519 keys, role description \`${d.seed.roleDescription}\``,
  );
  row(
    'runs',
    `${d.args.runs} per lookup series at 0 ms, ${d.args.delayRuns} at +${d.args.delayMs} ms, ${d.args.steadyRuns} steady syncs`,
  );
  push('');

  push('## Login lookup: `get_authorized_keys alice` (one cold process per run)', '');
  push(
    `ours: \`node packages/cli/dist/keymaker-host.js get_authorized_keys alice\`; original: \`keymaker get_authorized_keys alice\` from its virtualenv. alice has a local account with the UID both derive, as sshd requires. "warm cache" = as after the scheduled \`sync_groups\` ran (only root writes the cache; the lookup only reads it); "cold cache" = the cache directory (${L.cacheDirs.join(', ')}) emptied before each run.`,
    '',
  );
  row('figure', 'ours, cold cache', 'ours, warm cache', `keymaker ${d.versions.keymaker1}`, 'ratio warm / original');
  row('---', '---:', '---:', '---:', '---:');
  const line = (label, get, show = ms, withRatio = true) =>
    row(
      label,
      show(get(z.oursCold, 'zero')),
      show(get(z.oursWarm, 'zero')),
      show(get(z.orig, 'zero')),
      withRatio ? r2(ratio(get(z.oursWarm), get(z.orig))) : '',
    );
  line('wall, median (moto, ~1 ms per request)', (s) => s.wallMs.median);
  line('wall, p95', (s) => s.wallMs.p95);
  line(
    'IAM/STS requests per lookup',
    (s) => s.requests.median,
    (x) => fmt(x, 0),
  );
  line(
    'sequential round trips (waves)',
    (s) => s.waves.median,
    (x) => fmt(x, 0),
  );
  line('time waiting for IAM (proxy busy), median', (s) => s.busyMs.median);
  line('wall − IAM wait, median (the process itself)', (s) => s.outsideIamMs.median);
  row(
    `wall, median, +${d.args.delayMs} ms per request`,
    ms(dl.oursCold.wallMs.median),
    ms(dl.oursWarm.wallMs.median),
    ms(dl.orig.wallMs.median),
    r2(ratio(dl.oursWarm.wallMs.median, dl.orig.wallMs.median)),
  );
  row(
    `wall, p95, +${d.args.delayMs} ms per request`,
    ms(dl.oursCold.wallMs.p95),
    ms(dl.oursWarm.wallMs.p95),
    ms(dl.orig.wallMs.p95),
    r2(ratio(dl.oursWarm.wallMs.p95, dl.orig.wallMs.p95)),
  );
  row(
    `sequential round trips at +${d.args.delayMs} ms`,
    fmt(dl.oursCold.waves.median, 0),
    fmt(dl.oursWarm.waves.median, 0),
    fmt(dl.orig.waves.median, 0),
    '',
  );
  row(
    'peak RSS, median of 5',
    mib(L.rssKb.oursCold.median),
    mib(L.rssKb.oursWarm.median),
    mib(L.rssKb.orig.median),
    r2(ratio(L.rssKb.oursWarm.median, L.rssKb.orig.median)),
  );
  row(
    "output = alice's 2 active keys, every run",
    z.oursCold.allOk && dl.oursCold.allOk ? 'yes' : 'NO',
    z.oursWarm.allOk && dl.oursWarm.allOk ? 'yes' : 'NO',
    z.orig.allOk && dl.orig.allOk ? 'yes' : 'NO',
    '',
  );
  row('requests', actions(z.oursCold.byAction), actions(z.oursWarm.byAction), actions(z.orig.byAction), '');
  push('');
  push(
    `Baselines on this machine: \`node -e 0\` median **${ms(L.nodeBaseline.median)}** (p95 ${ms(L.nodeBaseline.p95)}); node loading the host bundle without running a command: median ${ms(L.bundleLoad?.median)}.`,
  );
  push(
    `Cache files present after a sync: ${L.cacheFilesAfterLookup.length ? L.cacheFilesAfterLookup.map((f) => `\`${f}\``).join(', ') : 'none'}.`,
    '',
  );

  push('## 20 concurrent lookups', '');
  row('variant', 'correct outputs', 'batch wall', 'per-process wall, median', 'requests in total');
  row('---', '---:', '---:', '---:', '---:');
  for (const [label, c] of [
    ['ours, cold cache (all race to fill it)', L.concurrent.oursCold],
    ['ours, warm cache', L.concurrent.oursWarm],
    [`keymaker ${d.versions.keymaker1}`, L.concurrent.orig],
  ]) {
    row(label, `${c.ok}/${c.n}`, ms(c.batchMs), ms(c.wallMs.median), fmt(c.requests, 0));
  }
  push('');

  push(`## Group sync: \`sync_groups\` with ${so.localAccounts} local accounts`, '');
  push(
    'Each tool in its own fresh sandbox: the same local accounts (legacy UIDs, written to /etc/passwd and /etc/shadow), no Linux groups yet, the open role (no required group: with one, ours would lock the accounts outside it, which the sync of 1.1.0 does not do). "first" = the first sync (creates 50 groups and 1,000 memberships, ours also keymaker-users with the 1,000 accounts); "steady" = the following syncs, nothing to change. After every sync the Linux groups are compared with IAM (GID and exact member list).',
    '',
  );
  row('figure', 'ours', `keymaker ${d.versions.keymaker1}`, 'ratio ours / original');
  row('---', '---:', '---:', '---:');
  if (!oursSync) {
    row('ours', 'not available (no sync_groups in the host bundle)', '', '');
  }
  const sy = (label, a, b, show = ms) =>
    row(label, oursSync ? show(a) : 'n/a', show(b), oursSync ? r2(ratio(a, b)) : '');
  sy('first sync, wall', so.first?.ms, sg.first?.ms);
  sy('first sync, IAM/STS requests', so.first?.requests, sg.first?.requests, (x) => fmt(x, 0));
  sy('first sync, sequential round trips', so.first?.waves, sg.first?.waves, (x) => fmt(x, 0));
  sy('first sync, time waiting for IAM', so.first?.busyMs, sg.first?.busyMs);
  sy('steady sync, wall (median)', so.steadyMs?.median, sg.steadyMs?.median);
  sy('steady sync, IAM/STS requests', so.steady?.[0]?.requests, sg.steady?.[0]?.requests, (x) => fmt(x, 0));
  sy('steady sync, sequential round trips', so.steady?.[0]?.waves, sg.steady?.[0]?.waves, (x) => fmt(x, 0));
  const vf = (s) =>
    s
      ? `${s.code === 0 ? 'exit 0' : `exit ${s.code}`}, ${s.verify.ok ? 'groups match IAM' : `MISMATCH (${s.verify.problemCount}: ${s.verify.problems[0]})`}`
      : '—';
  row('after first sync', oursSync ? vf(so.first) : 'n/a', vf(sg.first), '');
  row('after steady syncs', oursSync ? so.steady.map(vf).join('; ') : 'n/a', sg.steady?.map(vf).join('; ') ?? '—', '');
  row('requests', oursSync ? actions(so.first?.byAction) : 'n/a', actions(sg.first?.byAction), '');
  push('');
  if (so.localStepMs) {
    const st = so.localStepMs;
    push(
      `One local step here (median of 5): \`groupadd\` ${ms(st.groupadd.median)}, \`gpasswd --members\` (20 names) ${ms(st.setMembers.median)}, \`usermod --append --groups\` ${ms(st.usermodAppend.median)}. A first sync of 50 groups × 20 members costs at least 50 groupadd + 50 member-list writes ≈ ${ms(50 * (st.groupadd.median + st.setMembers.median))} done one group per step (ours), and 50 groupadd + 1,000 usermod ≈ ${ms(50 * st.groupadd.median + 1000 * st.usermodAppend.median)} done one membership per step (1.x).`,
      '',
    );
  }

  if (d.netlogin) renderNetlogin(d, push, row);
  if (d.agentNss) renderAgentNss(d, push, row);

  push('## Targets (ratios against the original, this run)', '');
  row('target', 'measured', 'verdict');
  row('---', '---', '---');
  const warm = z.oursWarm;
  const noConfigCalls = warm.byAction && !Object.keys(warm.byAction).some((k) => /GetCallerIdentity|GetRole$/.test(k));
  row(
    'lookup: ≤ 2 sequential IAM round trips when nothing changed (warm cache)',
    `${fmt(warm.waves.median, 0)} (max ${fmt(warm.waves.max, 0)}); ${fmt(warm.requests.median, 0)} requests; original ${fmt(z.orig.waves.median, 0)} round trips`,
    yes(warm.waves.max <= 2),
  );
  row(
    'lookup: role config (and resolver credentials) cached between logins',
    noConfigCalls
      ? 'warm lookups make no GetCallerIdentity/GetRole call'
      : `warm lookups still call ${actions(Object.fromEntries(Object.entries(warm.byAction ?? {}).filter(([k]) => /GetCallerIdentity|GetRole$/.test(k))))}; cache files: ${L.cacheFilesAfterLookup.length}`,
    yes(noConfigCalls),
  );
  const w0 = ratio(warm.wallMs.median, z.orig.wallMs.median);
  const w50 = ratio(dl.oursWarm.wallMs.median, dl.orig.wallMs.median);
  row(
    'lookup wall ≤ 0.3 × original (moto, ~1 ms per request)',
    `${r2(w0)} (${ms(warm.wallMs.median)} vs ${ms(z.orig.wallMs.median)})`,
    yes(w0 <= 0.3),
  );
  row(
    `lookup wall ≤ 0.3 × original (+${d.args.delayMs} ms per request)`,
    `${r2(w50)} (${ms(dl.oursWarm.wallMs.median)} vs ${ms(dl.orig.wallMs.median)})`,
    yes(w50 <= 0.3),
  );
  const vsNode = ratio(warm.outsideIamMs.median, L.nodeBaseline.median);
  row(
    'lookup ≤ 2 × `node -e 0`, excluding time waiting for IAM',
    `${r2(vsNode)} × (${ms(warm.outsideIamMs.median)} vs ${ms(L.nodeBaseline.median)}; bundle load alone ${ms(L.bundleLoad?.median)})`,
    yes(vsNode <= 2),
  );
  const ext = d.bundle.externalImports;
  row(
    'lookup loads no yargs, one bundled file',
    `yargs in bundle: ${d.bundle.mentionsYargs ? 'yes' : 'no'}; SDK clients: ${d.bundle.sdkClients.join(', ') || '—'}; non-builtin imports left: ${ext.length ? ext.join(', ') + ' (optional, loaded only if installed)' : 'none'}; compile cache: ${d.bundle.compileCache ? 'used' : 'not used'}`,
    yes(!d.bundle.mentionsYargs),
  );
  if (oursSync) {
    const fewer = so.first.requests <= sg.first.requests && so.steady[0].requests <= sg.steady[0].requests;
    row(
      'sync: no more requests than the original',
      `first ${so.first.requests} vs ${sg.first.requests}; steady ${so.steady[0].requests} vs ${sg.steady[0].requests}`,
      yes(fewer),
    );
    const f = ratio(so.first.ms, sg.first.ms);
    row(
      `sync: first sync with ${so.localAccounts} local accounts ≤ 0.1 × original`,
      `${r2(f)} (${ms(so.first.ms)} vs ${ms(sg.first.ms)})`,
      yes(f <= 0.1),
    );
  } else {
    row('sync targets', 'ours has no sync_groups yet', 'not measured');
  }
  const cc = L.concurrent;
  row(
    '20 concurrent lookups all return the right keys',
    `cold cache ${cc.oursCold.ok}/20, warm ${cc.oursWarm.ok}/20`,
    yes(cc.oursCold.ok === 20 && cc.oursWarm.ok === 20),
  );
  netTargetRows(d, row);
  push('');

  push('## Checks and findings', '');
  push(
    `- Same account for both: caller \`${d.seed.callerArn}\`; 1.x's \`get_uid alice\` printed ${L.origUid.printed} and the bench's legacy derivation gives ${L.origUid.expected} (${String(L.origUid.printed) === String(L.origUid.expected) ? 'equal: 1.x ignores `keymaker_uid_scheme`, both derive the same UIDs' : 'DIFFERENT'}); our lookup accepted alice's local account with that UID.`,
  );
  push(
    `- ${d.seed.duplicateUids} of the ${d.seed.users} legacy UIDs are shared by two users (the legacy scheme has only 32,768 values); ${d.seed.duplicateGids} duplicate group GIDs.`,
  );
  push(
    `- Seeding took ${fmt(d.seed.seededInMs / 1000, 1)} s. moto ignores MaxItems, so every listing here is one page: pagination is not exercised by this run (see the unit tests).`,
  );
  const rf = L.refusals;
  if (rf) {
    push('', '### Refusals and failure paths (one run each)', '');
    row('case', 'ours', `keymaker ${d.versions.keymaker1}`);
    row('---', '---', '---');
    const cell = (x) =>
      `exit ${x.code}, ${x.printedKeys} key line(s), ${x.requests} requests${x.injected ? ` (${x.injected} answered with Throttling)` : ''}${x.lastStderr ? `; stderr: \`${x.lastStderr.replace(/\|/g, '\\|').replace(/`/g, "'")}\`` : ''}`;
    row('u0001: active key, not in the required group', cell(rf.outsider.ours), cell(rf.outsider.orig));
    row(
      'u0001 while GetRole is throttled (every attempt)',
      cell(rf.outsiderGetRoleThrottled.ours),
      cell(rf.outsiderGetRoleThrottled.orig),
    );
    row('nosuchuser (no such IAM user)', cell(rf.noSuchUser.ours), cell(rf.noSuchUser.orig));
    push('');
  }
  push(
    `### What keymaker ${d.versions.keymaker1} does (read from its installed source, confirmed by the counts above)`,
    '',
  );
  push(
    '- Lookup: GetCallerIdentity → GetRole → ListGroupsForUser (required group) → ListSSHPublicKeys → one GetSSHPublicKey per key, **inactive keys included**, every call sequential (7 round trips for alice). No cache: every login pays the role lookup again. ListSSHPublicKeys is not paginated (harmless: IAM allows 5 keys per user).',
  );
  push(
    '- Lookup fails **open** on the role config: any exception while reading it (throttled or denied GetRole, an unexpected ARN) is logged at INFO as "No IAM role based configuration found" and the lookup goes on with no config, so the required-group check (and the user suffix, and the ID-resolver account) silently disappear: see the throttled-GetRole row.',
  );
  push(
    '- Its error path for a failed key listing calls `err_exit(..., code=os.errno.EINVAL)`; `os.errno` no longer exists (Python ≥ 3.7), so that path dies with an AttributeError traceback instead. A user missing from IAM gives an uncaught botocore traceback (exit 1) either way.',
  );
  push(
    '- Sync: GetCallerIdentity, GetRole, ListGroups (paginated through the boto3 resource), then GetGroup per prefixed group (paginated), all sequential; one `groupadd` per missing group and **one `usermod --append` per missing membership** (1,000 on a first sync), one `gpasswd --delete` per removal. 1.1.0 does not empty member lists (it builds a list, not a one-shot generator): its groups matched IAM after every sync here. It treats any local account with UID ≥ 2000 of the same name as the IAM user (no UID check), and a `groupadd` GID collision aborts the whole sync (`check_call`).',
  );
  push(
    '- `keymaker_uid_scheme=legacy` in the role description is ignored by 1.1.0 (unknown `keymaker_*` tokens are parsed and never read), so one description serves both tools during a migration.',
  );
  push('');
  return `${lines.join('\n')}\n`;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const fs = await import('node:fs');
  const file = process.argv[2] ?? new URL('./.work/results.json', import.meta.url).pathname;
  process.stdout.write(renderReport(JSON.parse(fs.readFileSync(file, 'utf8'))));
}
