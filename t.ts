import {PGlite} from "@electric-sql/pglite";
let t=Date.now(); const p=new PGlite(); await p.waitReady; console.log('first', Date.now()-t);
t=Date.now(); const q=new PGlite(); await q.waitReady; console.log('second', Date.now()-t);
t=Date.now(); const d = await p.dumpDataDir('none'); console.log('dump', Date.now()-t, d.size);
t=Date.now(); const r=new PGlite({loadDataDir: d}); await r.waitReady; console.log('load', Date.now()-t);
