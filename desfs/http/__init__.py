"""The HTTP front end of `desfs serve`: the archive engine over ASGI (hypercorn on trio).

It sits beside the FUSE adapter: it may import the filesystem model's attribute rules and
the archive engine below it, never pyfuse3, and nothing imports it but the commands.
`app` routes requests, `files` answers for one file (ranges, conditionals, streaming),
`listings` for directories, `server` runs it.
"""
