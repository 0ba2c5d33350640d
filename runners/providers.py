"""Execution providers: which ones this onnxruntime build offers, what a name on the command line means, and the
one sentence a person gets for a provider that is not there.

A provider is named as onnxruntime names it (``OpenVINOExecutionProvider``) or by its short name, case-insensitive
(``openvino``, ``cpu``), as onnxruntime_perf_test's ``-e`` does. onnxruntime is passed in (or imported inside the
functions), so this module loads without it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from runners.errors import ModelError

SUFFIX = "ExecutionProvider"


def short_name(provider: str) -> str:
    """``OpenVINOExecutionProvider`` -> ``openvino``: how the report and the progress lines name a provider."""
    return (provider[: -len(SUFFIX)] if provider.endswith(SUFFIX) else provider).lower()


def split_names(values: Iterable[str]) -> list[str]:
    """``--provider a,b --provider c`` -> [a, b, c] (empty items dropped, order kept, repeats removed)."""
    names: list[str] = []
    for value in values:
        for item in str(value).split(","):
            item = item.strip()
            if item and item not in names:
                names.append(item)
    return names


def match(name: str, known: Iterable[str]) -> str | None:
    """The provider of ``known`` that ``name`` means: exact, then case-insensitive, then by short name."""
    known = list(known)
    if name in known:
        return name
    lowered = name.lower()
    for provider in known:
        if provider.lower() == lowered or short_name(provider) == lowered:
            return provider
    return None


@dataclass
class Resolution:
    """What the requested providers became: the ones to bench (onnxruntime's names, in the order asked) and one
    sentence for each one that cannot be benched here."""

    available: list[str]
    chosen: list[str] = field(default_factory=list)
    unavailable: dict[str, str] = field(default_factory=dict)


def resolve(requested: Iterable[str], available: Iterable[str], every_known: Iterable[str] = ()) -> Resolution:
    """Match each requested name against this build's providers (``available``); ``every_known`` is every provider
    onnxruntime knows of, built in or not (onnxruntime.get_all_providers), which tells "not in this build" from "no
    such provider"."""
    resolution = Resolution(available=list(available))
    offered = ", ".join(resolution.available) or "none"
    for name in requested:
        provider = match(name, resolution.available)
        if provider is not None:
            if provider not in resolution.chosen:
                resolution.chosen.append(provider)
            continue
        known = match(name, every_known)
        if known is not None:
            resolution.unavailable[name] = (f"{known} is not in this onnxruntime build, which offers {offered} "
                                            f"(a build with it is a separate package, e.g. onnxruntime-"
                                            f"{short_name(known)}, best installed in its own venv)")
        else:
            resolution.unavailable[name] = (f"{name!r} is not an onnxruntime execution provider; this build offers "
                                            f"{offered}")
    return resolution


def resolve_installed(requested: Iterable[str]) -> Resolution:
    """resolve() against the onnxruntime that is installed."""
    import onnxruntime as ort

    every = getattr(ort, "get_all_providers", lambda: [])()
    return resolve(requested, ort.get_available_providers(), every)


def parse_options(values: Iterable[str], providers: Iterable[str]) -> dict[str, dict[str, str]]:
    """``PROVIDER:KEY=VALUE`` items (``openvino:device_type=CPU``) -> {provider: {key: value}}; the provider part
    is matched like --provider. Raises ValueError with one sentence for a malformed item or a provider not
    benched."""
    providers = list(providers)
    options: dict[str, dict[str, str]] = {}
    for value in values:
        head, sep, assignment = str(value).partition(":")
        key, eq, setting = assignment.partition("=")
        if not sep or not eq or not head.strip() or not key.strip():
            raise ValueError(f"provider option {value!r} is not PROVIDER:KEY=VALUE (e.g. openvino:device_type=CPU)")
        provider = match(head.strip(), providers)
        if provider is None:
            raise ValueError(f"provider option {value!r} names {head.strip()!r}, which is not among the providers "
                             f"benched ({', '.join(providers)})")
        options.setdefault(provider, {})[key.strip()] = setting.strip()
    return options


def check_session_providers(session_providers: list[str], wanted: str) -> None:
    """Raise ModelError when onnxruntime gave a session another provider than the one asked for: it falls back
    to the CPU provider, with only a log line, when a provider fails to initialise."""
    if not session_providers or session_providers[0] != wanted:
        raise ModelError(f"onnxruntime did not start {wanted} for this file (the session runs on "
                           f"{', '.join(session_providers) or 'nothing'}), so its numbers would be another "
                           f"provider's")


def effective_options(session: Any, provider: str) -> Mapping[str, str]:
    """The options onnxruntime reports for a session's provider (all of them, defaults included, where the
    provider reports any)."""
    try:
        return dict(session.get_provider_options().get(provider, {}))
    except Exception:  # noqa: BLE001 - an older onnxruntime without get_provider_options
        return {}
