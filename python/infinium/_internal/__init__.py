"""Private implementation modules of the SDK, behind the public facades
(``infinium.tracing``, ``infinium.client``, ...). Nothing here is a stable API."""
