#!lua name=crvm
-- The cluster's shared state (docs/API.md §4.1; docs/CLUSTER.md "What is in Redis").
--
-- Every state change that must be atomic across nodes is one function here: the change and the
-- publication of its effects happen in one step, so that every node sees one user's changes in
-- the order Redis ran them. Effects are gathered per node and published at the end, one JSON
-- array per node appended to the node's stream `crvm:fx:<node>` (field `e`); the node reads
-- its stream from where it is, so a dropped connection loses nothing, and applies the effects
-- in order (`hub::Effect`). The node trims what it has read; a reaped node's stream goes.
--
-- Keys (t = tenant, u = user, c = call ID; `#t` is t's length, which keeps any t and u apart):
--   crvm:epoch              the data's identity: a node that finds it changed rebuilds
--   crvm:beats              zset node -> last heartbeat (ms, Redis clock): the live nodes
--   crvm:np:<node>          the generation prefix the node owns (hex)
--   crvm:pn:<prefix>        the node that owns a prefix
--   crvm:ns:<node>          hash gen -> [t, u]: the sessions of a node
--   crvm:link:<node>        "addr key": where the node's links listen, and their key
--   crvm:u:#t:t:u           hash node, gen, st (1 online, 2 in a call), dnd, call, sub (1 when
--                           the session wants status pushes), rc (1 while the session is held
--                           for a resume past the grace period)
--   crvm:sub:#t:t           hash node -> how many of its sessions want t's status pushes
--   crvm:on:#t:t            zset (score 0) of online users: the status list, sorted
--   crvm:c:#t:t:c           hash caller, callee, meet, connected (0/1), serial, timer
--   crvm:cs:#t:t            set of t's calls in progress (their IDs), for the admin API
--   crvm:end:#t:t:c         call c ended lately (60 s): a re-check must not make it again
--   crvm:timers             zset timer -> deadline (ms): the no-answer timers of ringing calls
--   crvm:serial             counter of calls (tells a call from a later one with its ID)
--   crvm:grace              set for a node timeout after a failover: nobody is reaped meanwhile
--   crvm:moving             set of the live nodes that have not re-checked their sessions here
--                           since a failover (a node timeout at most): refusals wait for them
--   crvm:op:<op>            the result of state change <op>, for a while (see `change`)
-- Generations and request IDs are 64-bit and travel as text (Lua numbers are doubles).

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function ukey(t, u) return 'crvm:u:' .. #t .. ':' .. t .. ':' .. u end
local function okey(t) return 'crvm:on:' .. #t .. ':' .. t end
local function ckey(t, c) return 'crvm:c:' .. #t .. ':' .. t .. ':' .. c end
local function cskey(t) return 'crvm:cs:' .. #t .. ':' .. t end
local function endkey(t, c) return 'crvm:end:' .. #t .. ':' .. t .. ':' .. c end
local function nkey(n) return 'crvm:ns:' .. n end
local function subkey(t) return 'crvm:sub:' .. #t .. ':' .. t end

-- Effects, per node, in order.
local function effects()
  local fx = { nodes = {}, order = {} }
  function fx.add(node, e)
    local l = fx.nodes[node]
    if not l then
      l = {}
      fx.nodes[node] = l
      table.insert(fx.order, node)
    end
    table.insert(l, e)
  end
  function fx.publish()
    for _, n in ipairs(fx.order) do
      redis.call('XADD', 'crvm:fx:' .. n, '*', 'e', cjson.encode(fx.nodes[n]))
    end
  end
  return fx
end

-- Registers state change `name`. Each attempt names its operation: a[1] is the operation ID
-- and a[2] how long (ms) its result is remembered; `fn` gets the other arguments. A change sent
-- again after its connection dropped is answered from that memory instead of running twice:
-- its effects were published by the run that made them, once. a[3] is the epoch of the data
-- set the sending node has restored its sessions into ('' for the changes that join and
-- restore): a change made for a user against another data set (Redis came back empty, and
-- this node has not restored its sessions yet) is refused, unremembered, with CRVMSTALE; the
-- node sends it again once it has.
local function change(name, fn)
  redis.register_function(name, function(keys, a)
    local memo = 'crvm:op:' .. a[1]
    local done = redis.call('GET', memo)
    if done then return cjson.decode(done)[1] end
    if a[3] ~= '' and redis.call('GET', 'crvm:epoch') ~= a[3] then
      return redis.error_reply('CRVMSTALE the data set changed: the node restores it first')
    end
    local args = {}
    for i = 4, #a do args[i - 3] = a[i] end
    local r = fn(keys, args)
    -- A refusal to run now (CRVMRESTORING) is not a result: the node sends it again.
    if type(r) == 'table' and r.err then return r end
    redis.call('SET', memo, cjson.encode({ r }), 'PX', a[2])
    return r
  end)
end

-- A message to u's current session, wherever it is.
local function deliver(fx, t, u, msg)
  local h = redis.call('HMGET', ukey(t, u), 'node', 'gen')
  if h[1] then
    fx.add(h[1], { k = 'deliver', gen = h[2], msg = msg })
  end
end

local function reply(fx, node, gen, re, code)
  fx.add(node, { k = 'reply', gen = gen, re = re, code = code or 0 })
end

-- Answers request re of session gen on node with code, through the node's channel (so that
-- the answer keeps its place among the effects of earlier changes), and returns the code.
local function answer(node, gen, re, code)
  local fx = effects()
  reply(fx, node, gen, re, code)
  fx.publish()
  return code
end

-- u's status object as it is now (0 when offline); `reconnecting` only when set.
local function status_of(t, u)
  local h = redis.call('HMGET', ukey(t, u), 'st', 'dnd', 'rc')
  local s = { userID = u, userStatus = 0, DNDType = 0 }
  if h[1] then
    s.userStatus, s.DNDType = tonumber(h[1]), tonumber(h[2])
    if h[3] then s.reconnecting = true end
  end
  return s
end

-- u's status as it is now, to the subscribers of t: only to the nodes that have some.
local function push_status(fx, t, u)
  local e = { k = 'status', tenant = t, status = status_of(t, u) }
  local nodes = redis.call('HGETALL', subkey(t))
  for i = 1, #nodes, 2 do
    fx.add(nodes[i], e)
  end
end

-- Whether u's current session (on node) wants t's status pushes: kept in u's record and
-- counted per node in crvm:sub, which push_status reads.
local function set_sub(t, u, node, on)
  local k = ukey(t, u)
  local was = redis.call('HGET', k, 'sub') == '1'
  if was == on then return end
  if on then
    redis.call('HSET', k, 'sub', 1)
    redis.call('HINCRBY', subkey(t), node, 1)
  else
    redis.call('HDEL', k, 'sub')
    if redis.call('HINCRBY', subkey(t), node, -1) <= 0 then redis.call('HDEL', subkey(t), node) end
  end
end

local function set_in_call(fx, t, u, in_call)
  local k = ukey(t, u)
  if redis.call('EXISTS', k) == 1 then
    redis.call('HSET', k, 'st', in_call and 2 or 1)
    push_status(fx, t, u)
  end
end

-- Ends call c (see server/src/calls.rs, whose rules this mirrors): each party gets exactly one
-- terminal event, then both are out of the call.
local function end_call(fx, t, c, how, by, ext)
  local k = ckey(t, c)
  local h = redis.call('HMGET', k, 'caller', 'callee', 'connected', 'timer')
  local caller, callee, connected = h[1], h[2], h[3] == '1'
  redis.call('DEL', k)
  redis.call('SREM', cskey(t), c)
  -- For a while, a node re-checking its sessions must not make it again (its end may still be
  -- on its way there).
  redis.call('SET', endkey(t, c), 1, 'EX', 60)
  if h[4] then redis.call('ZREM', 'crvm:timers', h[4]) end
  -- Who is still in this call (after a restore from an old snapshot, a party may not be).
  local function party(u)
    return redis.call('HGET', ukey(t, u), 'call') == c
  end
  local in_caller, in_callee = party(caller), party(callee)
  -- A party Redis does not have in this call (Redis came back empty, or a failover lost its
  -- part of the call, and its node has not restored it yet) is told if its node restores it
  -- into this call (tell_lost_end): its end is kept with the call's end mark.
  local untold = {}
  local function tell(u, inside, msg)
    if inside then
      deliver(fx, t, u, msg)
    elseif u then
      untold[u] = msg
    end
  end
  local function rejected(reason, x)
    tell(caller, in_caller, { t = 'call_rejected', c = { call_id = c, reason = reason, ext = x } })
  end
  local function hungup(u, x)
    tell(u, party(u), { t = 'call_hungup', c = { call_id = c, ext = x } })
  end
  local function other(u)
    if u == caller then return callee else return caller end
  end
  if how == 'rejected' then
    rejected(606, ext)
  elseif how == 'hungup' then
    hungup(other(by), ext)
  elseif how == 'noanswer' then
    rejected(604, '')
    hungup(callee, '')
  elseif by == callee and not connected then
    rejected(603, '')
  else
    hungup(other(by), '')
  end
  if next(untold) then redis.call('SET', endkey(t, c), cjson.encode(untold), 'EX', 60) end
  for _, u in ipairs({ caller, callee }) do
    if (u == caller and in_caller) or (u == callee and in_callee) then
      redis.call('HDEL', ukey(t, u), 'call')
      set_in_call(fx, t, u, false)
    end
  end
end

-- u, just restored with call c that ended meanwhile, gets the end that could not reach it then
-- (end_call kept it), once.
local function tell_lost_end(fx, t, u, c)
  local v = redis.call('GET', endkey(t, c))
  if not v or v == '1' then return end
  local untold = cjson.decode(v)
  local msg = untold[u]
  if not msg then return end
  untold[u] = nil
  deliver(fx, t, u, msg)
  if next(untold) then
    redis.call('SET', endkey(t, c), cjson.encode(untold), 'KEEPTTL')
  else
    redis.call('SET', endkey(t, c), 1, 'KEEPTTL')
  end
end

-- u's session is going away: the call it is in ends as for a vanished party.
local function vanish(fx, t, u)
  local c = redis.call('HGET', ukey(t, u), 'call')
  if c then end_call(fx, t, c, 'vanished', u, '') end
end

-- Removes session gen of u (if it is u's) and pushes u offline.
local function remove_session(fx, t, u, gen)
  local k = ukey(t, u)
  local h = redis.call('HMGET', k, 'node', 'gen')
  if h[2] ~= gen then return false end
  vanish(fx, t, u)
  set_sub(t, u, h[1], false)
  redis.call('DEL', k)
  redis.call('ZREM', okey(t), u)
  redis.call('HDEL', nkey(h[1]), gen)
  push_status(fx, t, u)
  return true
end

-- Is `node` a live member of the data set it joined (epoch)?
local function member(node, epoch)
  return redis.call('GET', 'crvm:epoch') == epoch and redis.call('ZSCORE', 'crvm:beats', node)
end

-- Every session of a dead node ends; the node is forgotten.
local function reap(fx, node)
  local s = redis.call('HGETALL', nkey(node))
  local p = redis.call('GET', 'crvm:np:' .. node)
  if p and redis.call('GET', 'crvm:pn:' .. p) == node then redis.call('DEL', 'crvm:pn:' .. p) end
  local known = redis.call('ZREM', 'crvm:beats', node) == 1
  redis.call('DEL', nkey(node), 'crvm:np:' .. node, 'crvm:link:' .. node, 'crvm:fx:' .. node)
  -- The others end what they had in flight with it (a node unknown here, e.g. after Redis
  -- lost its data, had nothing to end).
  if known then
    for _, n in ipairs(redis.call('ZRANGE', 'crvm:beats', 0, -1)) do
      fx.add(n, { k = 'node_gone', node = node })
    end
  end
  for i = 1, #s, 2 do
    local tu = cjson.decode(s[i + 1])
    remove_session(fx, tu[1], tu[2], s[i])
  end
  return #s / 2
end

-- Whether the nodes may still be restoring their sessions into this data set: none has joined
-- it yet, a node joined and has not swept yet (crvm:restoring), or the data set was made
-- lately by a node that had sessions (crvm:young: the others have not noticed yet). A user not found meanwhile may be
-- one not restored yet: lookups of users refuse with CRVMRESTORING, and the node asks again.
local function restoring()
  if redis.call('EXISTS', 'crvm:young') == 1 then return true end
  -- Emptied, and no node has joined again yet.
  if redis.call('EXISTS', 'crvm:epoch') == 0 then return true end
  for _, n in ipairs(redis.call('SMEMBERS', 'crvm:restoring')) do
    if redis.call('ZSCORE', 'crvm:beats', n) then return true end
  end
  return false
end

local function not_restored_yet()
  return redis.error_reply('CRVMRESTORING the nodes are restoring their sessions')
end

-- join(node, prefix, new_epoch, link, young_ms, restore) -> {epoch, ok}: makes `node` a live
-- member with no sessions (whatever an earlier instance of it left ends now). young_ms > 0: the
-- node had joined a data set Redis lost, so the other nodes may have sessions to restore: a
-- data set it creates is young that long, and each node that joins it with sessions to restore
-- (restore = '1') makes it young that long again; such a node is restoring until its sweep.
-- The epoch is created when missing (an empty Redis). ok = 0 when another node owns `prefix`.
change('crvm_join', function(_, a)
  local node, prefix = a[1], a[2]
  local epoch = redis.call('GET', 'crvm:epoch')
  local young = tonumber(a[5] or '0')
  local restore = a[6] == '1'
  if not epoch then
    epoch = a[3]
    redis.call('SET', 'crvm:epoch', epoch)
    if young > 0 then redis.call('SET', 'crvm:young', 1, 'PX', young) end
  elseif restore and young > 0 and redis.call('EXISTS', 'crvm:young') == 1 then
    redis.call('SET', 'crvm:young', 1, 'PX', young)
  end
  if restore then
    redis.call('SADD', 'crvm:restoring', node)
  else
    redis.call('SREM', 'crvm:restoring', node)
  end
  local owner = redis.call('GET', 'crvm:pn:' .. prefix)
  if owner and owner ~= node then return { epoch, 0 } end
  local fx = effects()
  reap(fx, node)
  redis.call('SET', 'crvm:pn:' .. prefix, node)
  redis.call('SET', 'crvm:np:' .. node, prefix)
  redis.call('SET', 'crvm:link:' .. node, a[4])
  redis.call('ZADD', 'crvm:beats', now_ms(), node)
  fx.publish()
  return { epoch, 1 }
end)

-- beat(node, epoch, timeout_ms, moved) -> 'ok' | 'fenced' (reaped meanwhile) | 'wiped' (the
-- data is not the data this node joined). Also reaps every node silent for longer than the
-- timeout — except for a timeout after a node found the primary moved (moved = '1', a
-- failover): the beats the old primary took after its replica was promoted are lost, so every
-- node looks silent here until it has beaten again.
redis.register_function('crvm_beat', function(_, a)
  local node, epoch, timeout = a[1], a[2], tonumber(a[3])
  local e = redis.call('GET', 'crvm:epoch')
  if e ~= epoch then return 'wiped' end
  if not redis.call('ZSCORE', 'crvm:beats', node) then return 'fenced' end
  local now = now_ms()
  redis.call('ZADD', 'crvm:beats', now, node)
  if a[4] == '1' then
    if redis.call('EXISTS', 'crvm:grace') == 0 then
      -- The first node to report this failover: every live node may have written to the old
      -- primary what this one lacks, until it re-checks its sessions here.
      for _, n in ipairs(redis.call('ZRANGEBYSCORE', 'crvm:beats', now - timeout, '+inf')) do
        redis.call('SADD', 'crvm:moving', n)
      end
    end
    redis.call('SADD', 'crvm:moving', node)
    redis.call('PEXPIRE', 'crvm:moving', timeout)
    redis.call('SET', 'crvm:grace', 1, 'PX', timeout)
  end
  local fx = effects()
  if redis.call('EXISTS', 'crvm:grace') == 0 then
    for _, n in ipairs(redis.call('ZRANGEBYSCORE', 'crvm:beats', '-inf', '(' .. (now - timeout))) do
      reap(fx, n)
    end
  end
  fx.publish()
  return 'ok'
end)

-- leave(node, epoch): a node stopping on purpose ends its sessions at once.
change('crvm_leave', function(_, a)
  if not member(a[1], a[2]) then return 0 end
  local fx = effects()
  local n = reap(fx, a[1])
  fx.publish()
  return n
end)

-- login(node, epoch, t, u, gen) -> 1, or 0 when this node is not a live member. `epoch` is the
-- one the node had joined when the login arrived; the login may have waited meanwhile for the
-- node's restore into a new data set (Redis came back empty), so membership is checked in the
-- data set the wrapper found this node restored into (it refuses the others with CRVMSTALE).
change('crvm_login', function(_, a)
  local node, t, u, gen = a[1], a[3], a[4], a[5]
  if not member(node, redis.call('GET', 'crvm:epoch')) then return 0 end
  local fx = effects()
  local k = ukey(t, u)
  local old = redis.call('HMGET', k, 'node', 'gen')
  -- A restore of this node's live sessions may have recorded this very login already.
  if old[2] == gen then return 1 end
  vanish(fx, t, u)
  if old[2] then
    set_sub(t, u, old[1], false)
    redis.call('HDEL', nkey(old[1]), old[2])
    fx.add(old[1], { k = 'kick', gen = old[2] })
  end
  redis.call('DEL', k)
  redis.call('HSET', k, 'node', node, 'gen', gen, 'st', 1, 'dnd', 0)
  redis.call('ZADD', okey(t), 0, u)
  redis.call('HSET', nkey(node), gen, cjson.encode({ t, u }))
  push_status(fx, t, u)
  fx.publish()
  return 1
end)

-- Puts u back into call c with `peer` (u placed it when is_caller), after Redis lost it: the
-- first party restored makes the call again (ringing with a fresh no-answer timer, or
-- accepted) and gives the other party until `wait` ms from now to be restored into it too
-- (crvm_timers then ends it as for a party that went away). False when c is another call now,
-- or ended lately (crvm:end: its end is on its way to u's node).
local function restore_call(t, u, c, peer, is_caller, connected, meet, ctimeout, wait)
  local caller, callee = u, peer
  if not is_caller then caller, callee = peer, u end
  local k = ckey(t, c)
  local h = redis.call('HMGET', k, 'caller', 'callee', 'connected', 'timer')
  if not h[1] and redis.call('EXISTS', endkey(t, c)) == 1 then
    return false
  elseif not h[1] then
    local serial = tostring(redis.call('INCR', 'crvm:serial'))
    local timer = cjson.encode({ t, c, serial })
    redis.call('HSET', k, 'caller', caller, 'callee', callee, 'meet', meet,
      'connected', connected and 1 or 0, 'serial', serial, 'timer', timer)
    redis.call('SADD', cskey(t), c)
    if not connected then redis.call('ZADD', 'crvm:timers', now_ms() + ctimeout, timer) end
    redis.call('ZADD', 'crvm:timers', now_ms() + wait, cjson.encode({ t, c, serial, 'parties' }))
  elseif h[1] ~= caller or h[2] ~= callee then
    return false
  elseif connected and h[3] == '0' then
    -- The accept reached one party before Redis lost it.
    redis.call('HSET', k, 'connected', 1)
    redis.call('ZREM', 'crvm:timers', h[4])
  end
  redis.call('HSET', ukey(t, u), 'call', c)
  return true
end

-- Redis has u in call c, which u's live session is not in (its end was lost: written to a
-- primary whose replica took over before it got it). When the session cannot merely not know
-- of it yet — it placed c, or c was accepted — c goes, silently (both parties heard its end).
local function drop_stale_call(fx, t, u, c)
  local k = ckey(t, c)
  local h = redis.call('HMGET', k, 'caller', 'callee', 'connected', 'timer')
  if h[1] and h[1] ~= u and h[3] ~= '1' then return end
  redis.call('DEL', k)
  redis.call('SREM', cskey(t), c)
  if h[4] then redis.call('ZREM', 'crvm:timers', h[4]) end
  for _, p in ipairs({ h[1] or u, h[2] or u }) do
    if redis.call('HGET', ukey(t, p), 'call') == c then
      redis.call('HDEL', ukey(t, p), 'call')
      set_in_call(fx, t, p, false)
    end
  end
end

-- restore(node, epoch, call_timeout_ms, wait_ms, [t, u, gen, dnd, sub, c, peer, caller,
-- connected, meet]...) -> for each session 1 (restored) or 0 (the user is logged in elsewhere
-- now: the session is kicked). After Redis lost (some of) its data. A session's call (c not
-- empty) is restored only where Redis has no call for it (see restore_call).
change('crvm_restore', function(_, a)
  local node, epoch, ctimeout, wait = a[1], a[2], tonumber(a[3]), tonumber(a[4])
  if not member(node, epoch) then return redis.error_reply('not a member') end
  local fx = effects()
  local out = {}
  for i = 5, #a, 10 do
    local t, u, gen, dnd = a[i], a[i + 1], a[i + 2], a[i + 3]
    local c = a[i + 5]
    local k = ukey(t, u)
    local cur = redis.call('HGET', k, 'gen')
    if cur and cur ~= gen then
      table.insert(out, 0)
      fx.add(node, { k = 'kick', gen = gen })
    else
      redis.call('HSET', k, 'node', node, 'gen', gen, 'dnd', dnd)
      set_sub(t, u, node, a[i + 4] == '1')
      local rc = redis.call('HGET', k, 'call')
      if rc and rc ~= c then drop_stale_call(fx, t, u, rc) end
      if c ~= '' and redis.call('HEXISTS', k, 'call') == 0 then
        if not restore_call(t, u, c, a[i + 6], a[i + 7] == '1', a[i + 8] == '1', a[i + 9],
            ctimeout, wait) then
          tell_lost_end(fx, t, u, c)
        end
      end
      redis.call('HSET', k, 'st', redis.call('HEXISTS', k, 'call') == 1 and 2 or 1)
      redis.call('ZADD', okey(t), 0, u)
      redis.call('HSET', nkey(node), gen, cjson.encode({ t, u }))
      push_status(fx, t, u)
      table.insert(out, 1)
    end
  end
  fx.publish()
  return out
end)

-- a < b for generations (decimal text without leading zeros).
local function gen_lt(a, b)
  if #a ~= #b then return #a < #b end
  return a < b
end

-- sweep(node, epoch, from, to, gen...) -> how many ended: the node's sessions in Redis that it
-- no longer has (Redis came back from an older snapshot, or a login's outcome was lost with its
-- link). Generations in [from, to) are newer than the list and are kept.
change('crvm_sweep', function(_, a)
  local node, epoch, from, to = a[1], a[2], a[3], a[4]
  if not member(node, epoch) then return redis.error_reply('not a member') end
  local live = {}
  for i = 5, #a do live[a[i]] = true end
  local function newer(g) return not gen_lt(g, from) and gen_lt(g, to) end
  local fx = effects()
  local s = redis.call('HGETALL', nkey(node))
  local n = 0
  for i = 1, #s, 2 do
    if not live[s[i]] and not newer(s[i]) then
      local tu = cjson.decode(s[i + 1])
      if not remove_session(fx, tu[1], tu[2], s[i]) then redis.call('HDEL', nkey(node), s[i]) end
      n = n + 1
    end
  end
  -- Its sessions are all in: users not found are gone, not on their way.
  redis.call('SREM', 'crvm:restoring', node)
  redis.call('SREM', 'crvm:moving', node)
  fx.publish()
  return n
end)

-- logout(t, u, gen): ends session gen if it is still u's.
change('crvm_logout', function(_, a)
  local fx = effects()
  local done = remove_session(fx, a[1], a[2], a[3])
  fx.publish()
  return done and 1 or 0
end)

-- move(from, epoch, to, t, u, gen) -> 1, or 0 when gen is not u's session on `from` or either
-- node is not a live member (a drain, docs/CLUSTER.md). From now on u's effects go to `to`;
-- `from` gets a `moved` marker after every effect it had for gen before.
change('crvm_move', function(_, a)
  local from, epoch, to, t, u, gen = a[1], a[2], a[3], a[4], a[5], a[6]
  local fx = effects()
  fx.add(from, { k = 'moved', gen = gen })
  local k = ukey(t, u)
  local h = redis.call('HMGET', k, 'node', 'gen', 'sub')
  local ok = member(from, epoch) and redis.call('ZSCORE', 'crvm:beats', to)
    and h[1] == from and h[2] == gen
  if ok then
    local sub = h[3] == '1'
    if sub then set_sub(t, u, from, false) end
    redis.call('HSET', k, 'node', to)
    redis.call('HDEL', nkey(from), gen)
    redis.call('HSET', nkey(to), gen, cjson.encode({ t, u }))
    if sub then set_sub(t, u, to, true) end
  end
  fx.publish()
  return ok and 1 or 0
end)

-- where(t, u) -> the node of u's session, or nil.
redis.register_function{
  function_name = 'crvm_where',
  callback = function(_, a)
    local node = redis.call('HGET', ukey(a[1], a[2]), 'node')
    if not node and restoring() then return not_restored_yet() end
    return node
  end,
  flags = { 'no-writes' },
}

-- kick(t, u) -> 1 if u had a session, which its node closes with 206 (the admin API); else 0.
change('crvm_kick', function(_, a)
  local h = redis.call('HMGET', ukey(a[1], a[2]), 'node', 'gen')
  if not h[2] then return 0 end
  local fx = effects()
  fx.add(h[1], { k = 'kicked', gen = h[2] })
  fx.publish()
  return 1
end)

-- set_dnd(node, t, u, gen, re, dnd) -> 0, or 12 when gen is not u's session; answered.
change('crvm_set_dnd', function(_, a)
  local node, t, u, gen, re, dnd = a[1], a[2], a[3], a[4], a[5], a[6]
  local k = ukey(t, u)
  if redis.call('HGET', k, 'gen') ~= gen then return answer(node, gen, re, 12) end
  redis.call('HSET', k, 'dnd', dnd)
  local fx = effects()
  push_status(fx, t, u)
  reply(fx, node, gen, re, 0)
  fx.publish()
  return 0
end)

-- reconnecting(t, u, gen, on) -> 1 if the mark changed: session gen of u (if still u's) is held
-- for a resume (on = '1') or not any more; a change is pushed.
change('crvm_reconnecting', function(_, a)
  local t, u, gen, on = a[1], a[2], a[3], a[4] == '1'
  local k = ukey(t, u)
  local h = redis.call('HMGET', k, 'gen', 'rc')
  if h[1] ~= gen or (h[2] ~= false) == on then return 0 end
  if on then redis.call('HSET', k, 'rc', 1) else redis.call('HDEL', k, 'rc') end
  local fx = effects()
  push_status(fx, t, u)
  fx.publish()
  return 1
end)

-- notify(node, t, u, gen, on, re): the session's subscription changes in order with every
-- effect published before (the node applies it from its channel, then answers); t's status
-- changes reach the node from now on, for as long as it has a subscriber in t.
change('crvm_notify', function(_, a)
  local node, t, u, gen, on = a[1], a[2], a[3], a[4], a[5] == '1'
  if redis.call('HGET', ukey(t, u), 'gen') == gen then set_sub(t, u, node, on) end
  local fx = effects()
  fx.add(node, { k = 'notify', gen = gen, on = on, re = a[6] })
  fx.publish()
  return 1
end)

-- snapshot(node, t...): every online user's status of these tenants, to the node's channel in
-- order with every change, for its subscribers after the node may have missed changes (it
-- joined again after Redis lost its data, or its subscription was interrupted).
change('crvm_snapshot', function(_, a)
  local fx = effects()
  for i = 2, #a do
    local t = a[i]
    for _, u in ipairs(redis.call('ZRANGE', okey(t), 0, -1)) do
      if redis.call('EXISTS', ukey(t, u)) == 1 then
        fx.add(a[1], { k = 'status', tenant = t, status = status_of(t, u) })
      end
    end
  end
  fx.publish()
  return 1
end)

-- statuses(t) -> {u, st, dnd, rc (0/1), ...} sorted by user ID.
redis.register_function{
  function_name = 'crvm_statuses',
  callback = function(_, a)
    local t = a[1]
    local out = {}
    for _, u in ipairs(redis.call('ZRANGE', okey(t), 0, -1)) do
      local h = redis.call('HMGET', ukey(t, u), 'st', 'dnd', 'rc')
      if h[1] then
        table.insert(out, u)
        table.insert(out, tonumber(h[1]))
        table.insert(out, tonumber(h[2]))
        table.insert(out, h[3] and 1 or 0)
      end
    end
    return out
  end,
  flags = { 'no-writes' },
}

-- The requester's session (node) if gen is still u's.
local function requester(t, u, gen)
  local h = redis.call('HMGET', ukey(t, u), 'node', 'gen')
  if h[2] ~= gen then return nil end
  return h[1]
end

-- The call functions take (node, t, u, gen, re, ...) and answer request re themselves, with
-- 0 or an error code, which they also return. A node behind Sentinel sends '?node': a refusal
-- (600 no such call, 601 busy, 602 callee busy, 603 offline) is then not answered but returned
-- unremembered, nothing done, as CRVMREFUSED — or CRVMMOVING while a node has not re-checked
-- its sessions since a failover (the refusal may come from what it wrote to the old primary).
-- The node confirms the primary with Sentinel and sends it again, finally as plain 'node'.
local function who(at)
  if string.sub(at, 1, 1) == '?' then return string.sub(at, 2), true end
  return at, false
end

local function refuse(at, confirm, gen, re, code)
  if not confirm then return answer(at, gen, re, code) end
  for _, n in ipairs(redis.call('SMEMBERS', 'crvm:moving')) do
    if redis.call('ZSCORE', 'crvm:beats', n) then
      return redis.error_reply('CRVMMOVING a node has not re-checked its sessions since a failover')
    end
  end
  return redis.error_reply('CRVMREFUSED ' .. code)
end

-- call(node, t, u, gen, re, c, callee, meet, ext, timeout_ms).
change('crvm_call', function(_, a)
  local at, t, u, gen, re, c, callee, meet, ext = a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9]
  local confirm
  at, confirm = who(at)
  local node = requester(t, u, gen)
  if not node then return answer(at, gen, re, 12) end
  if callee == u then return answer(at, gen, re, 5) end
  if redis.call('HEXISTS', ukey(t, u), 'call') == 1 then return refuse(at, confirm, gen, re, 601) end
  -- Call IDs are random 128-bit values; a clash means a misbehaving client.
  if redis.call('EXISTS', ckey(t, c)) == 1 then return answer(at, gen, re, 5) end
  local h = redis.call('HMGET', ukey(t, callee), 'node', 'dnd', 'call')
  if not h[1] then
    if restoring() then return not_restored_yet() end
    return refuse(at, confirm, gen, re, 603)
  end
  if h[2] ~= '0' or h[3] then return refuse(at, confirm, gen, re, 602) end
  local serial = tostring(redis.call('INCR', 'crvm:serial'))
  local timer = cjson.encode({ t, c, serial })
  redis.call('HSET', ckey(t, c), 'caller', u, 'callee', callee, 'meet', meet, 'connected', 0,
    'serial', serial, 'timer', timer)
  redis.call('SADD', cskey(t), c)
  redis.call('DEL', endkey(t, c))
  redis.call('ZADD', 'crvm:timers', now_ms() + tonumber(a[10]), timer)
  redis.call('HSET', ukey(t, u), 'call', c)
  redis.call('HSET', ukey(t, callee), 'call', c)
  local fx = effects()
  set_in_call(fx, t, u, true)
  set_in_call(fx, t, callee, true)
  deliver(fx, t, callee, { t = 'call_in', c = { call_id = c, caller = u, meet_obj = meet, ext = ext } })
  reply(fx, node, gen, re)
  -- The caller learns that it rings a user whose link is down.
  local callee_status = status_of(t, callee)
  if callee_status.reconnecting then
    fx.add(node, { k = 'deliver', gen = gen, msg = { t = 'user_status', c = callee_status } })
  end
  fx.publish()
  return 0
end)

-- The ringing call c of which u is the callee, or nil.
local function ringing_for(t, u, c)
  local h = redis.call('HMGET', ckey(t, c), 'callee', 'connected')
  if h[1] == u and h[2] == '0' then return true end
  return nil
end

-- accept(node, t, u, gen, re, c, meet, ext): 0 or 600.
change('crvm_accept', function(_, a)
  local at, t, u, gen, re, c, meet, ext = a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8]
  local confirm
  at, confirm = who(at)
  local node = requester(t, u, gen)
  if not node or not ringing_for(t, u, c) then return refuse(at, confirm, gen, re, 600) end
  local k = ckey(t, c)
  local h = redis.call('HMGET', k, 'caller', 'meet', 'timer')
  redis.call('HSET', k, 'connected', 1)
  redis.call('ZREM', 'crvm:timers', h[3])
  if meet == '' then meet = h[2] end
  local fx = effects()
  deliver(fx, t, h[1], { t = 'call_accepted', c = { call_id = c, ext = ext, meet_obj = meet } })
  reply(fx, node, gen, re)
  fx.publish()
  return 0
end)

-- reject(node, t, u, gen, re, c, ext): 0 or 600.
change('crvm_reject', function(_, a)
  local at, t, u, gen, re, c, ext = a[1], a[2], a[3], a[4], a[5], a[6], a[7]
  local confirm
  at, confirm = who(at)
  local node = requester(t, u, gen)
  if not node or not ringing_for(t, u, c) then return refuse(at, confirm, gen, re, 600) end
  local fx = effects()
  end_call(fx, t, c, 'rejected', u, ext)
  reply(fx, node, gen, re)
  fx.publish()
  return 0
end)

-- hangup(node, t, u, gen, re, c, ext): 0 or 600.
change('crvm_hangup', function(_, a)
  local at, t, u, gen, re, c, ext = a[1], a[2], a[3], a[4], a[5], a[6], a[7]
  local confirm
  at, confirm = who(at)
  local node = requester(t, u, gen)
  if not node then return refuse(at, confirm, gen, re, 600) end
  local h = redis.call('HMGET', ckey(t, c), 'caller', 'callee')
  if h[1] ~= u and h[2] ~= u then return refuse(at, confirm, gen, re, 600) end
  local fx = effects()
  end_call(fx, t, c, 'hungup', u, ext)
  reply(fx, node, gen, re)
  fx.publish()
  return 0
end)

-- timers() -> how many fired: every no-answer timer that is due ends its call if it still
-- rings; a restored call's deadline for its parties (see restore_call) ends it if one is
-- missing. Whichever node runs this first takes a timer; it fires once.
redis.register_function('crvm_timers', function(_, _)
  local due = redis.call('ZRANGEBYSCORE', 'crvm:timers', '-inf', now_ms(), 'LIMIT', 0, 256)
  local fx = effects()
  for _, timer in ipairs(due) do
    redis.call('ZREM', 'crvm:timers', timer)
    local x = cjson.decode(timer)
    local t, c = x[1], x[2]
    local h = redis.call('HMGET', ckey(t, c), 'serial', 'connected', 'caller', 'callee')
    if h[1] ~= x[3] then
      -- That call ended (or it is a later one with its ID).
    elseif x[4] == 'parties' then
      -- A restored call: a party not restored into it by now is gone.
      for _, p in ipairs({ h[3], h[4] }) do
        if redis.call('HGET', ukey(t, p), 'call') ~= c then
          end_call(fx, t, c, 'vanished', p, '')
          break
        end
      end
    elseif h[2] == '0' then
      end_call(fx, t, c, 'noanswer', nil, '')
    end
  end
  fx.publish()
  return #due
end)
