"""The kubeadm wrapper's brain: user command line + environment + host facts → one NodePlan.

API for the CLI / node runtime (stable; the bodies land in later commits)::

    from podsec.u7s import flags, wrapper
    from podsec.u7s.probe import HostProbe

    args = flags.parse(argv)          # argv after "kubeadm"; UsageError (exit 2) on bad input
    args.command                      # "init" | "join" | "reset" | "" | any other subcommand
    args.help                         # -h/--help anywhere: run the real kubeadm with args.raw
    args.force                        # podsec's own --force for init/join (not given to kubeadm)
    args.planned                      # init/join proper (not help, not "init phase ...")
    args.passthrough_argv()           # argv for the real kubeadm (reset / other subcommands)

    if args.planned:
        # the earlier cluster state is deploy.existing_state's (refused or removed there)
        plan = wrapper.build_plan(settings, host, args, probe=HostProbe(host))
        # real kubeadm inside the namespace:
        #   kubeadm <plan.role→init|join> *plan.kubeadm_args --config <file with plan.kubeadm_config>
        render.kubeadm_argv(plan, config_path)    # that argv, ready to run (podsec.u7s.render)
        render.render_env_file(plan)   # text of /etc/podsec/u7s/config/env (U7S_* of §4.2 step 13)

    # after kubeadm wrote /var/lib/kubelet/config.yaml (1.20: cgroupsPerQOS false and
    # enforceNodeAllocatable [] that kubeadm drops):
    kubeadm_config.patch_kubelet_config(text, plan.kube_version) -> str
    # flannel (when plan.cni == "flannel"): the manifest with images on the chosen registry
    render.flannel_manifest(plan) -> str     # write it OUTSIDE kubelet's static-pod dir
    # pause substituted under U7S_SETAVAILABLEIMAGES: after pulling, tag each pulled image
    # with the name kubeadm expects: render.retag_pairs(plan) -> [(pulled, expected)]

Secrets (bootstrap token, certificate key) are in plan.kubeadm_config and plan.env: write the
plan JSON, the kubeadm config and the env file with mode 0600.

``probe`` is every host fact the plan depends on (kubeadm version, image list, registry tags,
interfaces and default route, programs on PATH, hostname, uid); tests pass a fake one.
Images imported from an OCI layout instead of a registry (offline, this machine): check them
against the layout, so missing flannel gives bridge and missing CoreDNS skips its addon::

    p = LocalImagesProbe(HostProbe(host), probe.oci_layout_refs(layout_dir))
    notes: list[str] = []
    plan = wrapper.build_plan(settings, host, args, probe=p, notes=notes)  # print the notes
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from ipaddress import IPv4Address
from pathlib import Path

from podsec.config import Settings
from podsec.errors import UsageError
from podsec.host.paths import Host
from podsec.i18n import _
from podsec.names import U7S_USER
from podsec.registry import platform, versions
from podsec.u7s import flags, images, kubeadm_config, network
from podsec.u7s.flags import DNS_NAME_RE, KubeadmArgs
from podsec.u7s.plan import Cni, Cri, NodePlan, Role
from podsec.u7s.probe import Probe

SLIRP_GUEST = 100  # slirp4netns gives the namespace <network>.100


def podsec_help() -> str:
    """podsec's part of ``kubeadm --help`` through the wrapper, printed after the upstream
    help: what the wrapper adds (``--force``), the ``U7S_*`` variables it reads, examples."""
    return _(
        "\nrootless Kubernetes (podsec u7s): this kubeadm is podsec's wrapper.\n"
        "`kubeadm init` and `kubeadm join` plan the node, pull the images, start rootlesskit,\n"
        "the CRI and the kubelet as u7s-admin and run the real kubeadm inside its namespace;\n"
        "`kubeadm reset` undoes it; every other subcommand runs inside the namespace.\n"
        "\n"
        "podsec's flags (init, join):\n"
        "  --force      remove this node's previous cluster state (etcd member, /etc/kubernetes)\n"
        "               before init/join; without it podsec refuses to run over it\n"
        "\n"
        "Environment (also /etc/podsec/podsec.toml):\n"
        "  U7S_REGISTRY             image repository (default: registry.local/k8s-c10f1 or\n"
        "                           registry.local/k8s-p10 when /etc/hosts names registry.local,\n"
        "                           else registry.altlinux.org/...; k8s-c10f1 when CPE_NAME has spserver)\n"
        "  U7S_PLATFORM             c10f or p10 (instead of /etc/os-release)\n"
        "  U7S_KUBEVERSION          Kubernetes version to deploy (default: kubeadm's own)\n"
        "  U7S_SETAVAILABLEIMAGES   use the newest available tag of a missing image's minor\n"
        "  U7S_CNI_PLUGIN           flannel (default) or bridge\n"
        "  U7S_FLANNEL_TAG, U7S_FLANNELCNIPLUGIN_TAG   flannel image tags\n"
        "  U7S_DEBUG                verbose steps\n"
        "\n"
        "Examples:\n"
        "  export PATH=/usr/libexec/podsec/u7s/bin/:$PATH; kubeadm init\n"
        "  kubeadm init --pod-network-cidr=10.244.0.0/16 --force\n"
        "  kubeadm join 192.168.1.10:6443 --token T --discovery-token-ca-cert-hash sha256:H\n"
        "  kubeadm reset\n"
        "See also: podsec u7s --help, man podsec-u7s-kubeadm\n"
    )


def _role(args: KubeadmArgs, user_cp: bool) -> Role:
    if args.command == "init":
        return "init"
    return "join-control-plane" if args.flag("control-plane") or user_cp else "join-worker"


def _kube_version(settings: Settings, args: KubeadmArgs, kubeadm_version: str) -> str:
    wanted = args.value("kubernetes-version") or settings.kube_version or kubeadm_version
    wanted = wanted if wanted.startswith("v") else "v" + wanted
    if kubeadm_config.version_tuple(wanted) > kubeadm_config.version_tuple(kubeadm_version):
        raise UsageError(
            _("kubeadm {kubeadm} cannot deploy Kubernetes {wanted}").format(
                kubeadm=kubeadm_version, wanted=wanted
            ),
            hint=_("install kubeadm {minor} or choose an older U7S_KUBEVERSION").format(
                minor=versions.minor_of(wanted)
            ),
        )
    return wanted


def _cri(args: KubeadmArgs, probe: Probe) -> Cri:
    sock = args.value("cri-socket")
    if sock:
        return "crio" if "crio" in sock else "containerd"
    return "crio" if probe.which("crio") else "containerd"


def _merge_user_config(args: KubeadmArgs) -> tuple[KubeadmArgs, list[kubeadm_config.Doc], bool]:
    """Fold a user's --config file into the arguments (flags win) and validate again."""
    path = args.value("config")
    if not path:
        return args, [], False
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise UsageError(
            _("--config {path}: cannot read: {err}").format(path=path, err=exc.strerror)
        ) from exc
    docs = kubeadm_config.load_documents(text, path)
    values, lists, control_plane, endpoint = kubeadm_config.user_values(docs)
    unsafe = bool(lists.pop("_unsafe", ()))
    merged = replace(
        args,
        values={**values, **args.values},
        lists={**lists, **args.lists},
        booleans=args.booleans
        | ({"discovery-token-unsafe-skip-ca-verification"} if unsafe else set()),
        positionals=args.positionals or ((endpoint,) if endpoint else ()),
    )
    flags.validate(merged)
    return merged, docs, control_plane


def _kubeadm_args(args: KubeadmArgs, api: str, role: Role) -> tuple[str, ...]:
    out: list[str] = []
    old_patches = api == kubeadm_config.V1BETA2
    for given in args.passthrough:
        name, _eq, value = given[2:].partition("=")
        if name in ("patches", "experimental-patches"):
            # kubeadm ≤ 1.21 spells it --experimental-patches, newer ones --patches
            out.append(f"--{'experimental-patches' if old_patches else 'patches'}={value}")
        else:
            out.append(given)
    # the original always uploaded the certificates so that the printed control-plane join
    # command works; a dry run cannot upload them
    if role == "init" and not args.flag("dry-run") and "--upload-certs" not in out:
        out.append("--upload-certs")
    return tuple(out)


def build_plan(  # noqa: PLR0912, PLR0915 - one decision after another, in order
    settings: Settings,
    host: Host,
    args: KubeadmArgs,
    probe: Probe,
    *,
    verify_images: bool = True,
    notes: list[str] | None = None,
) -> NodePlan:
    """Everything `kubeadm init|join` on this node will do, decided up front (nothing is
    written here). ``verify_images=False`` skips the registry look-ups (offline planning).
    Warnings for the user (flannel → bridge, CoreDNS skipped, substituted image tags) are
    appended to ``notes`` when given."""
    if not args.planned:
        raise UsageError(_("kubeadm {command}: nothing to plan").format(command=args.command))
    args, user_docs, user_cp = _merge_user_config(args)
    role = _role(args, user_cp)
    kubeadm_version = probe.kubeadm_version()
    api = kubeadm_config.api_for(kubeadm_version)
    kube_version = _kube_version(settings, args, kubeadm_version)
    repo = args.value("image-repository")
    source = platform.from_repository(repo) if repo else platform.choose(settings, host)
    cni: Cni = settings.cni_plugin  # type: ignore[assignment]

    # addresses
    addresses = probe.addresses()
    adv_text = args.value("apiserver-advertise-address")
    if adv_text:
        advertise = IPv4Address(adv_text)
        if network.interface_of(addresses, advertise) is None:
            raise UsageError(
                _("--apiserver-advertise-address {addr} is not an address of this host").format(
                    addr=advertise
                )
            )
        ext_dev = network.interface_of(addresses, advertise) or ""
    else:
        ext = network.external_address(addresses, probe.default_route())
        advertise, ext_dev = ext.interface.ip, ext.ifname
    bind_port = int(args.value("apiserver-bind-port") or network.DEFAULT_BIND_PORT)
    pod_text = args.value("pod-network-cidr")
    svc_text = args.value("service-cidr")
    pod_cidr = (
        flags.check_cidr("pod-network-cidr", pod_text)
        if pod_text
        else network.DEFAULT_POD_CIDR[cni]
    )
    service_cidr = (
        flags.check_cidr("service-cidr", svc_text) if svc_text else network.DEFAULT_SERVICE_CIDR
    )
    network.check_overlaps(pod_cidr, service_cidr, addresses)
    cluster_ip, cluster_dns = network.service_addresses(service_cidr)
    host_nets = [a.interface.network for a in addresses if not a.interface.ip.is_loopback]
    slirp_cidr = network.choose_slirp_cidr([*host_nets, pod_cidr, service_cidr])

    if role == "init":
        ep_text = args.value("control-plane-endpoint")
        if ep_text:
            ep_host, ep_port = flags.check_endpoint("control-plane-endpoint", ep_text)
            network.check_endpoint_differs(ep_host, advertise, joining=False)
            endpoint = f"{ep_host}:{ep_port or bind_port}"
        else:
            endpoint = f"{advertise}:{bind_port}"
    else:
        endpoint = args.positionals[0] if args.positionals else ""
        if endpoint:
            ep_host, _port = flags.check_endpoint("join", endpoint)
            network.check_endpoint_differs(ep_host, advertise, joining=True)

    node_name = (args.value("node-name") or probe.hostname()).lower()
    if not DNS_NAME_RE.fullmatch(node_name):
        raise UsageError(
            _("node name {name!r} is not a valid DNS name").format(name=node_name),
            hint=_("pass --node-name"),
        )
    cri = _cri(args, probe)
    skip_phases = args.lists.get("skip-phases", ())
    imgs = images.resolve(
        probe,
        source,
        settings,
        version=kube_version,
        role=role,
        cni=cni,
        skip_phases=skip_phases,
        pod_cidr=pod_cidr,
        check=verify_images,
    )
    cni = imgs.cni  # type: ignore[assignment]
    kube_version = imgs.kube_version
    if notes is not None:
        notes.extend(imgs.notes)
        notes.extend(
            _("U7S_SETAVAILABLEIMAGES: {used} instead of {wanted}").format(used=b, wanted=a)
            for a, b in imgs.substitutions
        )
    gates: dict[str, bool] = {}
    for gate in (args.value("feature-gates") or "").split(","):
        if gate.strip():
            name, _eq, val = gate.strip().partition("=")
            gates[name] = val.lower() == "true"
    inp = kubeadm_config.ConfigInput(
        api=api,
        role=role,
        kube_version=kube_version,
        node_name=node_name,
        advertise_address=advertise,
        bind_port=bind_port,
        control_plane_endpoint=endpoint,
        pod_cidr=pod_cidr,
        service_cidr=service_cidr,
        cluster_dns=cluster_dns,
        image_repository=source.repository,
        cri=cri,
        cri_socket=args.value("cri-socket"),
        dns_domain=args.value("service-dns-domain") or "cluster.local",
        etcd_tag=imgs.etcd_tag,
        coredns_tag=imgs.coredns_tag,
        cert_sans=args.lists.get("apiserver-cert-extra-sans", ()),
        cert_dir=args.value("cert-dir"),
        feature_gates=gates,
        token=args.value("token"),
        token_ttl=args.value("token-ttl"),
        certificate_key=args.value("certificate-key"),
        ca_cert_hashes=args.lists.get("discovery-token-ca-cert-hash", ()),
        unsafe_skip_ca_verification=args.flag("discovery-token-unsafe-skip-ca-verification"),
        discovery_file=args.value("discovery-file"),
        discovery_token=args.value("discovery-token"),
        tls_bootstrap_token=args.value("tls-bootstrap-token"),
    )
    config = kubeadm_config.generate(inp, user_docs, args.value("config") or "")
    kubeadm_args = _kubeadm_args(args, api, role)
    uid = probe.uid(U7S_USER)
    plan = NodePlan(
        role=role,
        kube_version=kube_version,
        kubeadm_api=api,
        node_name=node_name,
        advertise_address=advertise,
        bind_port=bind_port,
        control_plane_endpoint=endpoint,
        pod_cidr=pod_cidr,
        service_cidr=service_cidr,
        cluster_ip=cluster_ip,
        cluster_dns=cluster_dns,
        slirp_cidr=slirp_cidr,
        image_repository=source.repository,
        pause_image=imgs.pause_image,
        images=imgs.images,
        cri=cri,
        cni=cni,
        ports=network.port_forwards(role, cni, bind_port),
        kubeadm_config=config,
        kubeadm_args=kubeadm_args,
        skip_phases=(*skip_phases, *(p for p in imgs.skip_phases if p not in skip_phases)),
        uid=uid if uid is not None else 0,
    )
    env = env_values(plan, source, imgs, inp, ext_dev=ext_dev, settings=settings)
    return replace(plan, env=env)


def _cidr_parts(net: object) -> tuple[str, str]:
    text = str(net)
    ip, _slash, mask = text.partition("/")
    return ip, mask


def env_values(
    plan: NodePlan,
    source: platform.ImageSource,
    imgs: images.ImageSet,
    inp: kubeadm_config.ConfigInput,
    *,
    ext_dev: str,
    settings: Settings,
) -> dict[str, str]:
    """The U7S_* variables of the original's env file (reference §4.2 step 13), names and
    misspellings kept (U7S_CERIFICATEKEY, U7S__KUBEPROXY_IMAGE) with corrected aliases."""
    by_name = {images.component(r): source.without_registry(r) for r in plan.images}
    control = {"init": "initMaster", "join-control-plane": "master", "join-worker": ""}
    svc_ip, svc_mask = _cidr_parts(plan.service_cidr)
    pod_ip, pod_mask = _cidr_parts(plan.pod_cidr)
    hashes = ",".join(inp.ca_cert_hashes)
    env = {
        "U7S_KUBEVERSION": plan.kube_version,
        "U7S_KUBEADMFLAGS": " ".join(plan.kubeadm_args),
        "U7S_PLATFORM": source.platform or "",
        "U7S_ALTREGISTRY": platform.ALT_REGISTRY,
        "U7S_REGISTRY": source.registry,
        "U7S_FLANNEL_REGISTRY": source.flannel_repository if plan.cni == "flannel" else "",
        "U7S_FLANNEL_TAG": imgs.flannel_tag or "",
        "U7S_FLANNELCNIPLUGIN_TAG": imgs.flannel_cni_tag or "",
        "U7S_REGISTRY_PLATFORM": source.repository,
        "U7S_IMAGES": " ".join(source.without_registry(r) for r in plan.images),
        "U7S_PAUSE_IMAGE": source.without_registry(plan.pause_image),
        "U7S_COREDNS_IMAGE": by_name.get("coredns", ""),
        "U7S_ETCD_IMAGE": by_name.get("etcd", ""),
        "U7S_KUBEAPISERVER_IMAGE": by_name.get("kube-apiserver", ""),
        "U7S_KUBECONTROLLER_IMAGE": by_name.get("kube-controller-manager", ""),
        "U7S_KUBESCHEDULER_IMAGE": by_name.get("kube-scheduler", ""),
        "U7S__KUBEPROXY_IMAGE": by_name.get("kube-proxy", ""),
        "U7S_KUBEPROXY_IMAGE": by_name.get("kube-proxy", ""),
        "U7S_FLANNEL_IMAGE": by_name.get("flannel", ""),
        "U7S_FLANNEL_CNI_IMAGE": by_name.get("flannel-cni-plugin", ""),
        "U7S_RETAG_IMAGES": " ".join(f"{a}={b}" for a, b in imgs.retag),
        "U7S_UID": str(plan.uid),
        "U7S_EXTIP": str(plan.advertise_address),
        "U7S_APISERVER_ADVERTISE_ADDRESS": str(plan.advertise_address),
        "U7S_APISERVER_BIND_PORT": str(plan.bind_port),
        "U7S_EXTDEV": ext_dev,
        "U7S_CONTROLPLANE": control[plan.role],
        "U7S_APISERVERENDPOINT": plan.control_plane_endpoint,
        "U7S_CONTROLPLANEENDPOINT": plan.control_plane_endpoint,
        "U7S_TOKEN": inp.token or inp.discovery_token or "",
        "U7S_CACERTHASH": hashes,
        "U7S_CERIFICATEKEY": inp.certificate_key or "",
        "U7S_CERTIFICATEKEY": inp.certificate_key or "",
        "U7S_SERVICECIDR": str(plan.service_cidr),
        "U7S_SERVICECIDRIP": svc_ip,
        "U7S_SERVICEMASK": svc_mask,
        "U7S_PODNETWORKCIDR": str(plan.pod_cidr),
        "U7S_PODNETWORKCIDRIP": pod_ip,
        "U7S_PODNETWORKMASK": pod_mask,
        "U7S_CNI_PLUGIN": plan.cni,
        "U7S_CRI": plan.cri,
        "U7S_NODENAME": plan.node_name,
        "U7S_DNSDOMAIN": inp.dns_domain,
        "U7S_ROOTLESSKIT_FLAGS": f"--cidr={plan.slirp_cidr}",
        "U7S_SLIRP_CIDR": str(plan.slirp_cidr),
        "U7S_KUBERNETESCLUSTERIP": str(plan.cluster_ip),
        "U7S_KUBERNETESCLUSTERDNS": str(plan.cluster_dns),
        "U7S_SLIRP4IP": str(plan.slirp_cidr.network_address + SLIRP_GUEST),
        "U7S_SKIP_PHASES": ",".join(plan.skip_phases),
        "U7S_DEBUG": "1" if settings.debug else "",
        "_CONTAINERS_ROOTLESS_UID": str(plan.uid),
        "_CONTAINERS_USERNS_CONFIGURED": "1",
    }
    return env


__all__: Sequence[str] = ("build_plan",)
