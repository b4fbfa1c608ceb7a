"""The memory of this process, as the benchmarks report it."""


def memory() -> dict:
  """This process's peak (VmHWM, not inherited from the parent) and settled
  (VmRSS) resident bytes, and the settled RSS split into anonymous memory
  (RssAnon: what the process allocated) and file pages (RssFile: mapped
  files, such as the compact store's frames, which the kernel can drop)."""
  fields = {'VmHWM:': 'peak_rss', 'VmRSS:': 'settled_rss',
            'RssAnon:': 'anon_rss', 'RssFile:': 'file_rss'}
  with open('/proc/self/status') as f:
    return {fields[l.split()[0]]: int(l.split()[1]) * 1024
            for l in f if l.split()[0] in fields}
