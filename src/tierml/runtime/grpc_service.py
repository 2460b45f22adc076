"""A tier service on a gRPC server: every answer typed, whatever arrives.

The OIP v2 methods a tier implements are registered with readers that do not fail: bytes
that are not the method's request message are refused INVALID_ARGUMENT with
``tierml-code: E_INPUT`` (gRPC's own readers answer INTERNAL with no code). Any other
method — the rest of the KServe / Triton service, or a name no service has — is refused
UNIMPLEMENTED with ``tierml-code: E_REMOTE``, for unary and streaming callers alike.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf.message import DecodeError
from tritonclient.grpc import service_pb2 as pb

from tierml.core.errors import InputDataError, RemoteError

if TYPE_CHECKING:
    from tierml.runtime.tier_server import TierService

SERVICE = "inference.GRPCInferenceService"
# The methods a tier serves: request and response messages.
METHODS: dict[str, tuple[Any, Any]] = {
    "ServerLive": (pb.ServerLiveRequest, pb.ServerLiveResponse),
    "ServerReady": (pb.ServerReadyRequest, pb.ServerReadyResponse),
    "ServerMetadata": (pb.ServerMetadataRequest, pb.ServerMetadataResponse),
    "ModelReady": (pb.ModelReadyRequest, pb.ModelReadyResponse),
    "ModelMetadata": (pb.ModelMetadataRequest, pb.ModelMetadataResponse),
    "ModelConfig": (pb.ModelConfigRequest, pb.ModelConfigResponse),
    "ModelInfer": (pb.ModelInferRequest, pb.ModelInferResponse),
}


class _Unreadable:
    """Bytes a method's request message could not be read from, and why."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _reader(message: Any) -> Callable[[bytes], Any]:
    def read(data: bytes) -> Any:
        try:
            return message.FromString(data)
        except (DecodeError, ValueError, RecursionError) as exc:
            return _Unreadable(" ".join(str(exc).split())[:120] or type(exc).__name__)

    return read


def _unary(service: TierService, method: str) -> grpc.RpcMethodHandler:
    request_type, response_type = METHODS[method]
    behaviour = getattr(service, method)

    def call(request: Any, context: grpc.ServicerContext) -> Any:
        if isinstance(request, _Unreadable):
            service.refuse(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                InputDataError(
                    f"The {method} request is not a {request_type.__name__} message "
                    f"({request.reason}).",
                    hint="Send the OIP v2 message the method takes.",
                ),
            )
        return behaviour(request, context)

    return grpc.unary_unary_rpc_method_handler(
        call,
        request_deserializer=_reader(request_type),
        response_serializer=response_type.SerializeToString,
    )


class _Unimplemented(grpc.GenericRpcHandler):  # type: ignore[misc]
    """Every method the tier does not serve: refused with a code, requests unread."""

    def __init__(self, service: TierService) -> None:
        self._service = service

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        name = str(getattr(details, "method", ""))
        shown = name if len(name) <= 80 else name[:77] + "..."
        service = self._service

        def refuse(requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
            service.refuse(
                context,
                grpc.StatusCode.UNIMPLEMENTED,
                RemoteError(
                    f"This tier does not serve {shown!r}.",
                    hint="Call ServerLive, ServerReady, ServerMetadata, ModelReady, "
                    "ModelMetadata, ModelConfig or ModelInfer.",
                ),
            )
            yield b""  # unreachable: refuse aborts; a generator, so gRPC iterates it

        return grpc.stream_stream_rpc_method_handler(refuse)


def add_tier_service(server: grpc.Server, service: TierService) -> None:
    handlers = {method: _unary(service, method) for method in METHODS}
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(SERVICE, handlers), _Unimplemented(service))
    )
