#!/usr/bin/env python3
"""The dashboard overview's queries over 100 000 subscriptions, timed with and without the
indexes given as arguments (see BENCHMARKS.md, Dashboard). Run from the repository root."""
import sqlite3, glob, time, re, sys
db=sqlite3.connect(':memory:')
for f in sorted(glob.glob('migrations/V*.sql'), key=lambda p:int(re.search(r'V(\d+)__',p).group(1))):
    db.executescript(open(f).read())
G=112233445566778899
now=int(time.time()*1000); DAY=86400000
db.execute("INSERT INTO guilds (guild_id, webhook_key, created_at, updated_at) VALUES (?, 'k', 0, 0)",(G,))
db.execute("INSERT INTO paid_roles (id, guild_id, role_id, price_minor, currency, billing, created_at, updated_at) VALUES (1, ?, 555, 499, 'USD', 'monthly', 0, 0)",(G,))
rows=[]
for i in range(100000):
    u=10000000+i
    st,end=('canceled',now-DAY) if i%4==3 else ('active',now+30*DAY)
    rows.append((G,u,'fan%d'%i, st,end))
db.executemany("INSERT INTO members (guild_id,user_id,username,created_at,updated_at) VALUES (?,?,?,0,0)",[(r[0],r[1],r[2]) for r in rows])
db.executemany("INSERT INTO subscriptions (guild_id,user_id,paid_role_id,provider,external_id,status,period_end,scope,created_at,updated_at) VALUES (?,?,1,'polar','x'||?,?,?,'operator',?,?)",[(r[0],r[1],r[1],r[3],r[4],now-(r[1]%100)*DAY,now-(r[1]%100)*DAY) for r in rows])
db.commit(); db.execute("ANALYZE")
ENT="((status IN ('active', 'trialing') AND period_end IS NULL) OR (status IN ('active', 'past_due') AND period_end IS NOT NULL AND :now < period_end + CASE WHEN payment_code IS NULL THEN :grace ELSE 0 END) OR (status IN ('canceled', 'trialing') AND period_end IS NOT NULL AND :now < period_end))"
F=f"FROM subscriptions WHERE guild_id = :guild AND test = 0 AND {ENT}"
P={'guild':G,'now':now,'grace':3*DAY,'week':7*DAY,'from':now-84*DAY}
Q={
'per_role':f"SELECT paid_role_id, COUNT(DISTINCT user_id) {F} GROUP BY paid_role_id",
'all':f"SELECT COUNT(DISTINCT user_id) {F}",
'begun':"SELECT (:now - created_at) / :week, COUNT(*) FROM subscriptions WHERE guild_id = :guild AND test = 0 AND status != 'pending' AND created_at > :from GROUP BY 1",
'ended':"SELECT (:now - updated_at) / :week, COUNT(*) FROM subscriptions WHERE guild_id = :guild AND test = 0 AND status IN ('expired', 'refunded', 'revoked') AND updated_at > :from GROUP BY 1",
'first':"SELECT s.id, s.user_id, m.username FROM subscriptions s CROSS JOIN paid_roles r ON r.id = s.paid_role_id LEFT JOIN members m ON m.guild_id = s.guild_id AND m.user_id = s.user_id WHERE s.guild_id = :guild AND s.test = 0 ORDER BY s.id DESC LIMIT 51",
}
def run(label):
    print('--',label)
    for k,q in Q.items():
        t=time.perf_counter()
        for _ in range(5): db.execute(q,P).fetchall()
        ms=(time.perf_counter()-t)/5*1000
        plan=' | '.join(r[3] for r in db.execute('EXPLAIN QUERY PLAN '+q,P))
        print(f"{k:9} {ms:7.1f} ms  {plan[:150]}")
run('now')
for stmt in sys.argv[1:]:
    db.execute(stmt)
db.execute("ANALYZE")
run('with '+'; '.join(sys.argv[1:]))
