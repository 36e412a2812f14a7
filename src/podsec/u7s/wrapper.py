"""The kubeadm wrapper's brain: user command line + environment + host facts → one NodePlan.

API for the CLI / node runtime (stable; the bodies land in later commits)::

    from podsec.u7s import flags, wrapper
    from podsec.u7s.probe import HostProbe

    args = flags.parse(argv)          # argv after "kubeadm"; UsageError (exit 2) on bad input
    args.command                      # "init" | "join" | "reset" | "" | any other subcommand
    args.help                         # -h/--help anywhere: run the real kubeadm with args.raw
    args.force                        # podsec's own --force for init/join (not given to kubeadm)
    args.passthrough_argv()           # argv for the real kubeadm (reset / other subcommands)

    if args.command in ("init", "join") and not args.help:
        wrapper.refuse_destructive(host, force=args.force)   # PodsecError if etcd member data or
                                                             # /etc/kubernetes content exists
        plan = wrapper.build_plan(settings, host, args, probe=HostProbe(host))
        # real kubeadm inside the namespace:
        #   kubeadm <plan.role→init|join> *plan.kubeadm_args --config <file with plan.kubeadm_config>
        wrapper.kubeadm_argv(plan, config_path)   # that argv, ready to run
        wrapper.render_env_file(plan)   # text of /etc/podsec/u7s/config/env (U7S_* of §4.2 step 13)

    # after kubeadm wrote /var/lib/kubelet/config.yaml (1.20: cgroupsPerQOS false and
    # enforceNodeAllocatable [] that kubeadm drops):
    kubeadm_config.patch_kubelet_config(text, plan) -> str
    # flannel (when plan.cni == "flannel"): the manifest with images on the chosen registry
    images.flannel_manifest(plan) -> str     # write it OUTSIDE kubelet's static-pod dir

``probe`` is every host fact the plan depends on (kubeadm version, image list, registry tags,
interfaces and default route, programs on PATH, hostname, uid); tests pass a fake one.
"""

from __future__ import annotations
