# Copyright: autoheal.haproxy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Documentation only: the module is a static binary (plugins/modules/__bin__/server_<system>_<arch>, built from
# rust/crates/autoheal-module) that the action plugin of the same name runs on the target.

from __future__ import annotations

DOCUMENTATION = r"""
---
module: server
short_description: Put an HAProxy server in or out of rotation, in haproxy.cfg and live
version_added: 0.1.0
description:
  - Edits one or more C(server) lines of an HAProxy configuration file without touching any other byte, and,
    when O(socket) is given, applies the same change to the running HAProxy through its admin socket and reads
    it back.
  - V(drain) writes C(weight 0) (no new traffic; existing sessions finish) and sets the live admin state to
    drain. V(disabled) adds the C(disabled) keyword (maintenance) and sets the live state to maint. O(weight)
    lowers the weight in the file and live. V(absent) turns the line into a comment and puts the server into
    maintenance until HAProxy reloads. V(enabled) undoes exactly what this module changed and leaves alone
    what was written by hand.
  - "What the module changes is recorded in a comment right above the server line
    (C(#autoheal <state> was: <original line>), or C(#autoheal <state> by autoheal was: ...) with
    O(set_by=autoheal)), without timestamps, so that V(enabled) restores the original line and a second run
    changes nothing."
  - Each server's result says how HAProxy's health check sees it (RV(changes[].check_status)) and who set its
    current state (RV(changes[].set_by)); O(require_healthy) and O(set_by=autoheal) hold a change back, without
    failing, on what they say.
  - The file is the source of truth. It is replaced atomically (temp file in the same directory, validated,
    synced, renamed over the original, owner and mode kept) under an exclusive lock on its directory, so
    concurrent runs on one file are serialised and none is lost. A failure before the write, or a live
    command that fails after it, leaves the original file byte-identical (see O(socket) for the exceptions).
  - Runs as a static binary on the target; no Python is needed there.
author:
  - autoheal.haproxy contributors (!UNKNOWN)
extends_documentation_fragment:
  - autoheal.haproxy.haproxy
options:
  path:
    description:
      - The HAProxy configuration file. Symlinks are resolved and the file they point to is edited.
    type: str
    default: /etc/haproxy/haproxy.cfg
  changes:
    description:
      - Several changes made as one, instead of O(backend), O(server), O(address), O(state) and O(weight).
        Each entry takes those options (and O(all_matches), whose top-level value is its default) plus
        C(reason), any value, returned as given in RV(changes).
      - They are planned against the file in one pass and applied under one lock, with one validation, one
        write and one backup; the O(min_active) guard counts them all together, so a batch that would leave a
        backend with too few active servers is refused as a whole.
      - An entry that designates no server (a typo, a renamed server, an unknown backend) does not hold back the
        others. It is reported with RV(changes[].found=false) and a warning, and the others are applied.
      - If any entry is wrong otherwise (a server two entries designate, an ambiguous name, a bad weight), the
        module fails naming the entry (C(changes[N])) and changes nothing, in the file or live.
      - An empty list changes nothing.
    type: list
    elements: dict
  backend:
    description:
      - Only look for the server in this C(backend) or C(listen) section.
      - Needed when the same server name or address appears in several sections, unless O(all_matches=true).
    type: str
  server:
    description:
      - The server's name, as on its C(server) line.
      - Exactly one of O(server) and O(address) is required, unless O(changes) is given.
    type: str
  address:
    description:
      - The server's address as written on its C(server) line, with or without the port (C(10.0.0.5),
        C(10.0.0.5:8080), an IPv6 address as HAProxy writes it, C(unix@/run/app.sock), a host name).
      - Exactly one of O(server) and O(address) is required, unless O(changes) is given.
    type: str
  all_matches:
    description:
      - Act on every server that matches. Without it, several matches are an error that lists them.
    type: bool
    default: false
  state:
    description:
      - V(enabled) puts the server back as it was before this module changed it.
      - V(drain) stops new traffic (C(weight 0) in the file, C(state drain) live).
      - V(disabled) puts the server in maintenance (C(disabled) in the file, C(state maint) live).
      - V(absent) comments the line out; it takes full effect at the next reload (RV(reload_required)),
        and the server is in maintenance live until then.
    type: str
    choices: [enabled, drain, disabled, absent]
    default: enabled
  weight:
    description:
      - A lower weight for a server that stays in service, absolute (V(0) to V(256)) or relative to the
        weight the server had before this module changed it (V(50%)).
      - Only with O(state=enabled). O(state=enabled) without O(weight) restores the original weight.
      - A percentage is always of the weight recorded before the module first changed the server, so a ramped
        restore (V(10%), then V(50%), then V(100%)) keeps that weight in the marker until V(100%) gives the
        original line back.
    type: raw
  require_healthy:
    description:
      - Restore (O(state=enabled), with or without O(weight)) only servers whose HAProxy health check passes,
        read on O(socket) while the server is still out (drain keeps health checks running).
      - A restore whose check fails, or cannot be read (no O(socket)), changes nothing for that server (nor for
        the other servers of its entry), does not fail the task, and is reported with
        RV(changes[].deferred=true) and RV(changes[].deferred_reason).
      - A server without a check is restored (RV(changes[].health_gate=no_check)); only the caller's hold-down
        protects it.
      - A server in maintenance (V(disabled)) or not in the running HAProxy yet (V(absent)) runs no check, so
        waiting would never end, so it is restored (RV(changes[].health_gate=checked_on_return)). HAProxy checks a
        server at once as it leaves maintenance or starts after the reload, and takes it down at the first
        failed check. Use V(drain) rather than V(disabled) where restores must wait for a passing check.
      - Only with O(state=enabled); in O(changes), it applies to the entries that restore.
    type: bool
    default: false
  set_by:
    description:
      - Who asks, recorded in the marker. V(operator) is a person or their playbook; V(autoheal) is the
        remediation loop (autoheal-relay, through the role autoheal.haproxy.remediate).
      - With V(autoheal), a server whose current state an operator set is left alone and reported with
        RV(changes[].skipped=true), RV(changes[].skip_reason=operator_state), without failing the task. An
        operator set it when its marker has no C(by autoheal) (markers written before markers recorded authors
        included), or when it is out (drained, in maintenance, weight 0) in the file or live without an autoheal
        marker saying so.
      - With V(operator), nothing is left alone; a state the loop set becomes the operator's when an operator
        sets it again.
    type: str
    choices: [autoheal, operator]
    default: operator
  socket:
    description:
      - Path of the HAProxy admin socket (C(stats socket ... level admin)) of the HAProxy that runs O(path).
      - When given, the change is also applied live with C(set server) and C(set weight), only where the live
        state differs, and the live state is read back with C(show servers state). The guard O(min_active)
        then also counts live health and state.
      - If a live command fails after the file was written, the file is put back and what had gone live is
        taken back, so that no server is left out live while the file puts it back (which would read as an
        operator's state, see RV(changes[].set_by)); the task fails saying so (not C(changed), RV(live_in_sync)
        V(true) when the take-back worked). Running it again helps once the socket answers; not when HAProxy
        refused the command (the message gives its answer). A file someone else changed in the meantime is
        left as it is (C(changed), RV(live_in_sync) V(false)).
      - If the reload or the read-back fails, the file keeps its change, the task fails and RV(live_in_sync)
        is V(false).
      - When every change takes traffic away (V(drain), V(disabled), V(absent)), it is applied live first and
        the file is validated and written after, so that the server stops taking traffic without waiting for
        them. If the file cannot be validated or written then, the live change is taken back and the task fails
        saying so (not C(changed), RV(live_in_sync) V(true)); the file and the running HAProxy keep their old
        state, and the task can be run again.
    type: str
  min_active:
    description:
      - The fewest active servers a backend may be left with. Active means not a backup, not absent, not
        disabled, weight above 0 and, with O(socket), up, ready and weighted in the running HAProxy.
      - A request that would take an active server out and leave fewer fails with RV(guard=blocked) and
        changes nothing, in the file or live. Putting servers back is never blocked.
    type: int
    default: 1
  backup:
    description:
      - Keep a copy of the file, named C(<path>.<pid>.<YYYY-MM-DD@HH:MM:SS>~) (UTC), when the module
        changes it.
    type: bool
    default: true
  validate:
    description:
      - Command that checks the candidate file before it replaces the original; V(%s) stands for the
        candidate's path and is required. It is split like a shell would split it but runs without a shell.
      - When not set, C(haproxy -c -f %s) is used if an C(haproxy) executable is on E(PATH) or at
        C(/usr/sbin/haproxy), and nothing otherwise. An empty string switches validation off.
      - If the command fails, the module fails with its output and the file is not changed.
    type: str
  checksum:
    description:
      - The sha256 (hex) the file must have for the module to write it, as returned by
        M(autoheal.haproxy.server_info) or an earlier run. A mismatch fails and writes nothing.
      - Only checked when the file would change.
    type: str
  lock_timeout:
    description:
      - Seconds to wait for another run on the same directory to release the lock.
    type: float
    default: 30
  reload:
    description:
      - Reload HAProxy gracefully (master-worker) when a change needs it (RV(reload_required)), that is after
        V(absent), after bringing an absent server back, or for a server the running HAProxy does not know.
        Nothing is reloaded in check mode or when nothing needs it.
      - V(master_cli) sends C(reload) on the master CLI socket O(master_socket) (C(haproxy -S)).
        V(signal) sends C(SIGUSR2) to the master whose pid is in O(pidfile). V(systemd) runs
        C(systemctl reload) O(service). V(none) only reports that a reload is needed.
      - The module then waits up to O(reload_timeout) for a new worker (another pid in C(show info)) to answer
        on O(socket), which is required. If none answers, or the reload cannot be asked for, the task fails,
        RV(reload_required) stays V(true), and the file keeps its change.
      - With this option no Python, C(socat) or C(kill) is needed on the target, for any O(state).
    type: str
    choices: [none, master_cli, signal, systemd]
    default: none
  master_socket:
    description: The master CLI socket, for O(reload=master_cli).
    type: path
    default: /run/haproxy-master.sock
  pidfile:
    description: The master's pid file (C(haproxy -p)), for O(reload=signal).
    type: path
    default: /run/haproxy.pid
  service:
    description: The service to reload, for O(reload=systemd).
    type: str
    default: haproxy
  reload_timeout:
    description: Seconds to wait for the new worker after a reload.
    type: float
    default: 15
  server_state_file:
    description:
      - Save C(show servers state) to this file just before a reload (the C(server-state-file) HAProxy loads
        at start with C(load-server-state-from-file)), so that the new worker keeps the runtime state.
    type: path
attributes:
  check_mode:
    description: Can run in check mode and return changed status prediction without modifying target.
    support: full
    details:
      - Predicts the file checksum, the diff, the live commands and the live state after them, and runs the
        O(min_active) guard, without writing the file or sending any C(set) command.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check mode), when in diff mode.
    support: full
  idempotent:
    description: When run twice in a row outside check mode, with the same arguments, the second invocation indicates no change.
    support: full
notes:
  - The target needs the binary built for its system and architecture; the action plugin says which one is
    missing.
  - Runtime API changes alone are lost at reload; this module writes the file first so that the state survives
    reloads and restarts.
seealso:
  - module: autoheal.haproxy.server_info
  - module: community.general.haproxy
    description: Changes the live state only, through the admin socket.
  - name: HAProxy runtime API
    description: The commands used live (C(set server), C(set weight), C(show servers state)).
    link: https://docs.haproxy.org/2.6/management.html#9.3
"""

EXAMPLES = r"""
- name: Drain web2 in the app backend, in the file and live
  autoheal.haproxy.server:
    backend: app
    server: web2
    state: drain
    socket: /run/haproxy/admin.sock

- name: Put it back exactly as it was
  autoheal.haproxy.server:
    backend: app
    server: web2
    state: enabled
    socket: /run/haproxy/admin.sock

- name: Halve the weight of the server at 10.0.0.5:8080, wherever it is
  autoheal.haproxy.server:
    address: 10.0.0.5:8080
    weight: 50%
    all_matches: true
    socket: /run/haproxy/admin.sock

- name: Take a server out of the file and reload HAProxy when needed
  autoheal.haproxy.server:
    path: /etc/haproxy/haproxy.cfg
    backend: app
    server: web3
    state: absent
    min_active: 2
  register: web3_gone
  notify: Reload haproxy

- name: Drain two servers and halve a third one's weight in one call (one write, one guard decision)
  autoheal.haproxy.server:
    socket: /run/haproxy/admin.sock
    min_active: 2
    changes:
      - {backend: app, server: web1, state: drain, reason: {alert: NodeCpuBusy}}
      - {backend: app, server: web4, state: drain}
      - {backend: api, address: 10.0.0.5:8080, weight: 50%}
  register: batch

- name: Take web3 out of the file and reload HAProxy through its master CLI, waiting for the new worker
  autoheal.haproxy.server:
    backend: app
    server: web3
    state: absent
    socket: /run/haproxy/admin.sock
    reload: master_cli
    master_socket: /run/haproxy-master.sock

- name: Ramp web2 back (as the remediation loop), only while its health check passes
  autoheal.haproxy.server:
    backend: app
    server: web2
    weight: "{{ item }}"
    require_healthy: true
    set_by: autoheal
    socket: /run/haproxy/admin.sock
  loop: [10%, 50%, 100%]
  register: ramp
  # A deferred step changes nothing: stop the ramp there.
  failed_when: ramp.deferred

- name: Only write if nobody changed the file since server_info read it
  autoheal.haproxy.server:
    server: web1
    state: disabled
    checksum: "{{ haproxy_info.checksum }}"
    validate: /usr/sbin/haproxy -c -f %s
"""

RETURN = r"""
haproxy_unreachable:
  description:
    - V(true) when the task failed because HAProxy did not answer on O(socket) (stopped, socket gone, timed
      out). Nothing was changed, in the file or live; a rollout over several load balancers can leave this one
      for a later run.
  returned: failure, when HAProxy did not answer
  type: bool
  sample: true
path:
  description: The file edited, symlinks resolved.
  returned: success
  type: str
  sample: /etc/haproxy/haproxy.cfg
checksum_before:
  description: The sha256 of the file before the run.
  returned: success
  type: str
  sample: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
checksum_after:
  description: The sha256 of the file after the run (predicted in check mode).
  returned: success
  type: str
  sample: 60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752
backup_file:
  description: The backup made of the file; V(null) when the file did not change or O(backup=false).
  returned: success
  type: str
  sample: /etc/haproxy/haproxy.cfg.4242.2026-11-25@14:30:05~
diff:
  description: The file before and after, for C(--diff).
  returned: in diff mode
  type: dict
  contains:
    before:
      description: The file's contents before.
      type: str
    after:
      description: The file's contents after.
      type: str
    before_header:
      description: Label of RV(diff.before).
      type: str
    after_header:
      description: Label of RV(diff.after).
      type: str
servers:
  description: One entry per matched server, in file order.
  returned: success or when the guard blocked the request
  type: list
  elements: dict
  contains:
    backend:
      description: The server's C(backend) or C(listen) section.
      type: str
      sample: app
    server:
      description: The server's name.
      type: str
      sample: web2
    address:
      description: The server's address as written.
      type: str
      sample: 10.0.0.5:8080
    changed:
      description: The file or the live state of this server changed.
      type: bool
    notes:
      description: Things the operator should know (for example a line edited by hand since the module changed it).
      type: list
      elements: str
    live_commands:
      description: The runtime API commands sent (in check mode, those that would be sent).
      type: list
      elements: str
      sample: [set server app/web2 state drain]
    before:
      description: The server before the run.
      type: dict
      contains:
        config:
          description:
            - The state the file gives the server.
            - C(weight), C(disabled), C(backup), C(absent); C(managed) is what the module's marker records
              (V(drain), V(disabled), V(absent), V(weight 5), V(weight 50%)) or V(null); C(original_weight)
              is the weight before the module changed it.
          type: dict
        live:
          description:
            - The server in the running HAProxy; V(null) without O(socket).
            - C(present) is V(false) when the running HAProxy does not know the server. Otherwise C(admin)
              (V(ready), V(drain) or V(maint)), C(active), C(op_state), C(admin_state), C(weight) and
              C(initial_weight) as C(show servers state) reports them.
          type: dict
    after:
      description: The server after the run (predicted in check mode), same keys as RV(servers[].before).
      type: dict
    found:
      description: Always V(true) here (a server listed was found).
      type: bool
    check_status:
      description: As RV(changes[].check_status), for this server.
      type: str
    set_by:
      description: As RV(changes[].set_by), for this server.
      type: str
    slowstart:
      description: As RV(changes[].slowstart), for this server.
      type: int
    health_gate:
      description: As RV(changes[].health_gate), for this server.
      type: str
    deferred:
      description: As RV(changes[].deferred), for this server.
      type: bool
    deferred_reason:
      description: As RV(changes[].deferred_reason), for this server.
      type: str
    skipped:
      description: As RV(changes[].skipped), for this server.
      type: bool
    skip_reason:
      description: As RV(changes[].skip_reason), for this server.
      type: str
changes:
  description: With O(changes), one entry per change, in the order given.
  returned: when O(changes) is given, on success or when the guard blocked the request
  type: list
  elements: dict
  contains:
    backend:
      description: The C(backend) asked for, or V(null).
      type: str
    server:
      description: The C(server) asked for, or V(null).
      type: str
    address:
      description: The C(address) asked for, or V(null).
      type: str
    state:
      description: The state asked for (V(drain), V(weight 50%), ...).
      type: str
      sample: drain
    reason:
      description: The entry's C(reason), as given, or V(null).
      type: raw
    changed:
      description: One of its servers changed (or would, in check mode).
      type: bool
    reload_required:
      description: One of its servers waits for a reload.
      type: bool
    msg:
      description: What happened to its servers, as in RV(msg); the guard's message when it refused the batch.
      type: str
    servers:
      description: The servers it designated, as C(backend/server); their detail is in RV(servers).
      type: list
      elements: str
      sample: [app/web1]
    found:
      description:
        - V(false) when the entry designates no server; nothing was done for it and RV(msg) says so.
      type: bool
    check_status:
      description:
        - HAProxy's health check of the server before the run, from O(socket).
        - V(passing) (HAProxy has it up), V(failing) (down), V(none) (no C(check) on its line or in the running
          HAProxy), V(unknown) (no O(socket), the running HAProxy does not know the server, or its checks are
          paused by maintenance).
        - "With several servers (O(all_matches)): the first one's; each server's is in RV(servers)."
      type: str
      sample: passing
    set_by:
      description:
        - Who set the server's state before the run, V(autoheal) or V(operator) (see O(set_by)), or V(null) when
          it was in service as configured.
      type: str
      sample: autoheal
    slowstart:
      description: The C(slowstart) of the server's line (or its C(default-server)) in milliseconds, or V(null).
      type: int
      sample: 30000
    health_gate:
      description:
        - What O(require_healthy) decided for a restore that would change something, or V(null) when it did not
          apply.
        - V(passed), V(no_check), V(checked_on_return) (see O(require_healthy)), or V(deferred).
      type: str
      sample: passed
    deferred:
      description: O(require_healthy) held the restore back; nothing was changed for the entry.
      type: bool
    deferred_reason:
      description: Why, naming the server and its check state; V(null) unless RV(changes[].deferred).
      type: str
      sample: "HAProxy's health check of app/web2 is failing (the server is down); the restore waits until the check passes"
    skipped:
      description: O(set_by=autoheal) left the entry alone (an operator set its server's state); nothing was changed.
      type: bool
    skip_reason:
      description: V(operator_state) when RV(changes[].skipped), else V(null).
      type: str
reload_required:
  description: HAProxy must reload before its running state can match the file (after V(absent), after bringing
    an absent server back, or for a server the running HAProxy does not know); V(false) once O(reload) did it.
  returned: success
  type: bool
reloaded:
  description: The reload the module did (O(reload)); V(null) when it did none.
  returned: success
  type: dict
  contains:
    old_pid:
      description: The worker before the reload.
      type: int
    new_pid:
      description: The new worker, which answered on O(socket).
      type: int
live_in_sync:
  description: The running HAProxy agrees with the file for every matched server; V(null) without O(socket).
  returned: success
  type: bool
guard:
  description: The O(min_active) guard's decision, V(passed) or V(blocked).
  returned: success or when the guard blocked the request
  type: str
  sample: passed
msg:
  description: What happened, one part per server (and per entry held back or not found).
  returned: always
  type: str
  sample: "app/web2 drain: file was updated; live: set server app/web2 state drain"
found:
  description:
    - Without O(changes), as RV(changes[].found). On failure, V(false) when the server asked for does not exist.
  returned: without O(changes); on failure when the server does not exist
  type: bool
check_status:
  description: Without O(changes), as RV(changes[].check_status).
  returned: success, without O(changes)
  type: str
set_by:
  description: Without O(changes), as RV(changes[].set_by).
  returned: success, without O(changes)
  type: str
slowstart:
  description: Without O(changes), as RV(changes[].slowstart).
  returned: success, without O(changes)
  type: int
health_gate:
  description: Without O(changes), as RV(changes[].health_gate).
  returned: success, without O(changes)
  type: str
deferred:
  description: Without O(changes), as RV(changes[].deferred).
  returned: success, without O(changes)
  type: bool
deferred_reason:
  description: Without O(changes), as RV(changes[].deferred_reason).
  returned: success, without O(changes)
  type: str
skipped:
  description: Without O(changes), as RV(changes[].skipped).
  returned: success, without O(changes)
  type: bool
skip_reason:
  description: Without O(changes), as RV(changes[].skip_reason).
  returned: success, without O(changes)
  type: str
warnings:
  description: Entries of O(changes) that designate no server (Ansible shows them as warnings).
  returned: when such entries were given
  type: list
  elements: str
"""
