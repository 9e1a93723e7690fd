"""The grid's own protocols: IEC 60870-5-104 (minerd as the controlled station) and
OpenADR 2.0b (minerd as a VEN). Both are quota sources like the REST API and MQTT: every
order goes through minerd.runtime.commands (validated, durable, audited, then the cycle
is woken). Their packages (c104, openleadr) are optional and imported only when enabled.

Only the composition root (minerd.daemon.components) imports this package.
"""
