# Ganga script (run INSIDE Ganga 8.7.12 with GangaDirac loaded):
#   echo '{"PATH": "/usr/bin:/bin"}' > /home/user/diracenv.json
#   ganga --no-mon -o'[Configuration]RUNTIME_PATH=GangaDirac' \
#         -o'[DIRAC]DiracEnvJSON=/home/user/diracenv.json' -o'[defaults_DiracProxy]group=lhcb_user' \
#         make_repo_backends.py
# Writes a small repository whose jobs use the batch backends, Condor and Dirac, and
# DiracFile / MassStorageFile outputs. Nothing is submitted (no batch system or DIRAC here):
# the run-time fields (backend ids, statuses, exit codes, sites, retrieved sub-files, LFNs,
# timestamps) are set on the objects through stripProxy, as monitoring would have set them,
# and Ganga's own repository code writes the XML.
import datetime

from GangaCore.GPIDev.Base.Proxy import stripProxy
from GangaCore.Utility.Config import getConfig

# MassStorageFile refuses to exist without an upload path configured.
_msf = getConfig('Output')['MassStorageFile']
_msf['uploadOptions']['path'] = '/eos/user/u/user/ganga'
getConfig('Output').setUserValue('MassStorageFile', _msf)

T0 = datetime.datetime(2026, 11, 23, 9, 0, 0, 250000)


def at(sec):
    return T0 + datetime.timedelta(seconds=sec)


def stamp(j, statuses, extra=None):
    """Sets the timestamps as Ganga's JobTime.timenow would have written them."""
    raw = stripProxy(j)
    ts = {'new': at(0)}
    t = 1
    for s in statuses:
        key = 'final' if s in ('completed', 'failed', 'killed') else s
        ts[key] = at(t)
        t += 7
    ts.update(extra or {})
    raw.time.timestamps = ts


def force(j, status):
    stripProxy(j).status = status


def setb(j, **fields):
    b = stripProxy(j.backend)
    for k, v in fields.items():
        setattr(b, k, v)


def out(j, sjid=None):
    base = '/home/user/gangadir/workspace/user/LocalXML/%d' % (j.id if sjid is None else stripProxy(j).master.id)
    return base + ('/output' if sjid is None else '/%d/output' % sjid)


# 0: LSF, completed, MassStorageFile output with a retrieved sub-file.
j = Job(name='lsf-done', comment='LSF with a queue and extra options')
j.application = Executable(exe='/usr/bin/env', args=['python3', 'ana.py', '--n', 10])
j.backend = LSF(queue='1nh', extraopts='-R "rusage[mem=2000]"')
j.outputfiles = [MassStorageFile('*.root'), LocalFile('summary.txt')]
force(j, 'completed')
setb(j, id='123456', exitcode=0, actualCE='lxbatch0042.cern.ch', actualqueue='1nh', status='DONE')
raw = stripProxy(j)
msf = MassStorageFile('hist.root')
stripProxy(msf).locations = ['/eos/user/u/user/ganga/0/hist.root']
stripProxy(raw.outputfiles[0]).subfiles = [stripProxy(msf)]
lf = LocalFile('summary.txt')
stripProxy(lf).localDir = out(j)
stripProxy(raw.outputfiles[1]).subfiles = [stripProxy(lf)]
stripProxy(j).info.submit_counter = 1
stamp(j, ['submitting', 'submitted', 'running', 'completed'],
      {'backend_running': at(9).replace(microsecond=0), 'backend_final': at(20).replace(microsecond=0)})

# 1: PBS, failed with exit code 2.
j = Job(name='pbs-failed')
j.application = Executable(exe='/bin/false')
j.backend = PBS(queue='short')
force(j, 'failed')
setb(j, id='991.pbs', exitcode=2, actualCE='node7')
stripProxy(j).info.submit_counter = 2
stamp(j, ['submitting', 'submitted', 'running', 'failed'], {'resubmitted': at(30)})

# 2: SGE, still running in Ganga.
j = Job(name='sge-running')
j.application = Executable(exe='/bin/sleep', args=['3600'])
j.backend = SGE(extraopts='-l h_vmem=2G')
force(j, 'running')
setb(j, id='4242', actualCE='sge-node-1')
stripProxy(j).info.submit_counter = 1
stamp(j, ['submitting', 'submitted', 'running'])

# 3: Slurm, submitted (queued) in Ganga.
j = Job(name='slurm-queued')
j.application = Executable(exe='/bin/hostname')
j.backend = Slurm(queue='debug')
force(j, 'submitted')
setb(j, id='777')
stripProxy(j).info.submit_counter = 1
stamp(j, ['submitting', 'submitted'])

# 4: Condor, completed.
j = Job(name='condor-done')
j.application = Executable(exe='/bin/echo', args=['condor'], env={'X': '1'})
j.backend = Condor(universe='vanilla', submit_options=['-name', 'schedd01'], env={'CONDOR_ENV': 'yes'},
                   accounting_group='group_u_TEST.user')
force(j, 'completed')
setb(j, id='1234.0', actualCE='slot1@wn01', status='Completed')
stripProxy(j).info.submit_counter = 1
stamp(j, ['submitting', 'submitted', 'running', 'completed'])

# 5: Dirac, split in three: Done with a DiracFile on the grid, Failed, Done downloaded.
j = Job(name='dirac-split', comment='Dirac with DiracFile outputs')
j.application = Executable(exe='/bin/sh', args=[])
j.backend = Dirac(settings={'CPUTime': 3600, 'BannedSites': ['LCG.CERN.cern']},
                  diracOpts='j.setTag(["skylake"])')
j.outputfiles = [DiracFile('*.root')]
j.splitter = ArgSplitter(args=[['-c', 'echo %d > out%d.root' % (i, i)] for i in range(3)])
raw = stripProxy(j)
sj_specs = [('completed', 'Done', 'Execution Complete', 'Execution Complete', 'LCG.CERN.cern'),
            ('failed', 'Failed', 'Application Finished With Errors', 'Failed with exit code 3', 'LCG.RAL.uk'),
            ('completed', 'Done', 'Execution Complete', 'Execution Complete', 'LCG.NIKHEF.nl')]
# Assigning the list copies only the copyable fields, so the run-time ones are set after.
raw.subjobs = [raw.splitter.createSubjob(raw) for _ in sj_specs]  # as every splitter does
for i, (sj, (st, major, minor, app, site)) in enumerate(zip(raw.subjobs, sj_specs)):
    sj._setParent(raw)
    sj.id = i
    sj.application.args = ['-c', 'echo %d > out%d.root' % (i, i)]
    sj.status = st
    sj.backend.id = 50000100 + i
    sj.backend.status = major
    sj.backend.statusInfo = minor
    sj.backend.extraInfo = app
    sj.backend.actualCE = site
    sj.backend.normCPUTime = '12.5'
    sj.info.submit_counter = 1
    sj.info.uuid = '00000000-0000-4000-8000-00000000000%d' % i
    if st == 'completed':
        df = stripProxy(DiracFile('out%d.root' % i))
        df.lfn = '/lhcb/user/u/user/ganga/5/%d/out%d.root' % (i, i)
        df.guid = 'A1B2C3D4-0000-0000-0000-00000000000%d' % i
        df.locations = ['CERN-USER']
        if i == 2:
            df.localDir = '/home/user/gangadir/workspace/user/LocalXML/5/2/output'
        sj.outputfiles[0].subfiles = [df]
    sj.time.timestamps = {'new': at(100), 'submitting': at(101), 'submitted': at(102),
                          'running': at(110 + i), 'final': at(120 + i),
                          'backend_running': at(108).replace(microsecond=0),
                          'backend_final': at(119).replace(microsecond=0)}
    sj._setDirty()
force(j, 'failed')
setb(j, actualCE=None)
raw.info.submit_counter = 1
raw.time.timestamps = {'new': at(100), 'submitting': at(101), 'submitted': at(102),
                       'running': at(110), 'final': at(122)}

# 6: Dirac, plain, completed, output downloaded; a DiracFile input.
j = Job(name='dirac-plain')
j.application = Executable(exe='/bin/echo', args=['hello'])
j.backend = Dirac()
j.inputfiles = [DiracFile(lfn='/lhcb/user/u/user/in/data.txt')]
j.outputfiles = [DiracFile('result.txt'), LocalFile('std*')]
force(j, 'completed')
setb(j, id=50000200, status='Done', statusInfo='Execution Complete', extraInfo='Execution Complete',
     actualCE='LCG.CERN.cern', normCPUTime='3.0')
raw = stripProxy(j)
df = stripProxy(DiracFile('result.txt'))
df.lfn = '/lhcb/user/u/user/ganga/6/result.txt'
df.guid = 'FFFF0000-1111-2222-3333-444455556666'
df.locations = ['CERN-USER', 'RAL-USER']
df.localDir = out(j)
raw.outputfiles[0].subfiles = [df]
subs = []
for n in ('stdout', 'stderr'):
    lf = stripProxy(LocalFile(n))
    lf.localDir = out(j)
    subs.append(lf)
raw.outputfiles[1].subfiles = subs
raw.info.submit_counter = 1
stamp(j, ['submitting', 'submitted', 'running', 'completed'])

# 7: Interactive: a Ganga backend ganga-rs has no counterpart for.
j = Job(name='interactive-done')
j.application = Executable(exe='/bin/true')
j.backend = Interactive()
force(j, 'completed')
stripProxy(j).info.submit_counter = 1
stamp(j, ['submitting', 'submitted', 'running', 'completed'])

# 8: Local, completed_frozen.
j = Job(name='frozen')
j.application = Executable(exe='/bin/echo', args=['frozen'])
j.backend = Local()
force(j, 'completed_frozen')
setb(j, id=4711, exitcode=0, actualCE='localhost')
stripProxy(j).info.submit_counter = 1
stamp(j, ['submitting', 'submitted', 'running', 'completed'])

# The retrieved files, where the sub-files' localDir says they are.
import os
for path, text in [(out(jobs(0)) + '/summary.txt', 'lsf summary\n'),
                   ('/home/user/gangadir/workspace/user/LocalXML/5/2/output/out2.root', 'root-ish 2\n'),
                   (out(jobs(6)) + '/result.txt', 'dirac result\n'),
                   (out(jobs(6)) + '/stdout', 'hello\n'),
                   (out(jobs(6)) + '/stderr', '')]:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        f.write(text)

for j in jobs:
    stripProxy(j)._setDirty()
jobs._impl.flush_all() if hasattr(jobs._impl, 'flush_all') else None
print('MADE', [(j.id, j.name, j.status, stripProxy(j.backend)._name) for j in jobs])
