"""Generated modules for the protos h2rpc itself serves (health, reflection).

They are checked in and regenerated with ``python -m rpc.codegen.runtime_protos``
(see that module for why they use :data:`POOL` and not protoc's ``_pb2.py``).
"""

from google.protobuf.descriptor_pool import DescriptorPool

#: h2rpc's own descriptor pool, so that grpcio-health-checking and
#: grpcio-reflection, which define the same symbols in protobuf's default
#: pool, can be imported in the same process.
POOL = DescriptorPool()
