# Ganga script (run INSIDE Ganga 8.7.12):  ganga --no-mon dump_expected.py OUT.json
#
# Loads every job and subjob of the gangadir Ganga is configured with, through Ganga's own
# repository code, and writes the fields the migration tests compare as JSON. The values
# come from Ganga's objects, not from the XML files: this is the importer-independent
# expectation for `ganga-migrate` (see README.md beside this file).
import calendar
import datetime
import json
import sys

from GangaCore.GPIDev.Base.Proxy import stripProxy

OUT = sys.argv[1]


def plain(v):
    """A JSON-able copy of a Ganga value."""
    v = stripProxy(v)
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, datetime.datetime):
        return v.isoformat()
    if isinstance(v, dict):
        return {str(k): plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)) or type(v).__name__ == 'GangaList':
        return [plain(x) for x in v]
    name = getattr(v, '_name', type(v).__name__)
    if name == 'File':
        return {'File': v.name}
    return {'class': name, 'repr': repr(v)}


def ms(dt):
    """Milliseconds since the epoch of a naive datetime read as UTC (Ganga writes
    datetime.utcnow()), microseconds truncated."""
    return calendar.timegm(dt.timetuple()) * 1000 + dt.microsecond // 1000


def gfile(f):
    f = stripProxy(f)
    d = {'class': f._name, 'namePattern': f.namePattern,
         'localDir': getattr(f, 'localDir', None)}
    for extra in ('lfn', 'guid', 'locations', 'outputfilenameformat', 'failureReason'):
        if extra in f._schema.datadict:
            d[extra] = plain(getattr(f, extra))
    d['subfiles'] = [gfile(s) for s in f.subfiles]
    return d


def backend(b):
    b = stripProxy(b)
    d = {'class': b._name}
    for k in ('id', 'exitcode', 'actualCE', 'status', 'statusInfo', 'extraInfo', 'queue',
              'extraopts', 'actualqueue', 'nice', 'batchsize'):
        if k in b._schema.datadict:
            d[k] = plain(getattr(b, k))
    return d


def application(a):
    a = stripProxy(a)
    d = {'class': a._name}
    for k in ('exe', 'args', 'env'):
        if k in a._schema.datadict:
            d[k] = plain(getattr(a, k))
    return d


def splitter(s):
    s = stripProxy(s)
    if s is None:
        return None
    d = {'class': s._name}
    for k in ('args', 'append', 'attribute', 'values', 'multi_attrs'):
        if k in s._schema.datadict:
            d[k] = plain(getattr(s, k))
    return d


def unit(j, master=None):
    j = stripProxy(j)
    ts = dict(j.time.timestamps)
    d = {
        'id': j.id,
        'name': j.name,
        'comment': j.comment,
        'status': j.status,
        'submit_counter': j.info.submit_counter,
        'uuid': j.info.uuid,
        'application': application(j.application),
        'backend': backend(j.backend),
        'inputfiles': [gfile(f) for f in j.inputfiles],
        'outputfiles': [gfile(f) for f in j.outputfiles] +
                       [gfile(f) for f in j.non_copyable_outputfiles],
        'timestamps': {k: v.isoformat() for k, v in ts.items()},
        'timestamps_ms': {k: ms(v) for k, v in ts.items()},
    }
    if master is None:
        d['splitter'] = splitter(j.splitter)
        d['subjobs'] = [unit(sj, j) for sj in j.subjobs]
    return d


result = {
    'ganga_version': __import__('importlib.metadata').metadata.version('ganga'),
    'jobs': [],
    'incomplete_jobs': list(jobs.incomplete_ids()) if hasattr(jobs, 'incomplete_ids') else [],
    'templates': [],
    'box': [],
    'jobtree': None,
}
for j in jobs:
    result['jobs'].append(unit(j))
for t in templates:
    result['templates'].append(unit(t))
try:
    for item in box:
        o = stripProxy(item)
        result['box'].append({'class': o._name, 'value': application(o) if o._category == 'applications' else repr(o)})
except Exception as e:  # an empty box or an API difference must not lose the rest
    result['box_error'] = repr(e)
try:
    result['jobtree'] = plain(stripProxy(jobtree).folders)
except Exception as e:
    result['jobtree_error'] = repr(e)

result['jobs'].sort(key=lambda d: d['id'])
with open(OUT, 'w') as f:
    json.dump(result, f, indent=1, sort_keys=True, ensure_ascii=False)
    f.write('\n')
print('DUMPED jobs=%d subjobs=%d templates=%d to %s' % (
    len(result['jobs']), sum(len(j['subjobs']) for j in result['jobs']),
    len(result['templates']), OUT))
