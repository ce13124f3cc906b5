import SkiffKernel

/// The spec's hooks (runtime-spec config.md#posix-platform-hooks): programs run at fixed points
/// of the lifecycle with the container's state on standard input. prestart, createRuntime,
/// poststart and poststop run in the runtime's namespaces; createContainer (after the mounts,
/// before pivot_root) and startContainer (after `start`, just before execve) run inside the
/// container, from its init.
enum Hooks {
    /// Runs `hooks` in order; the first that fails or outlives its timeout stops the container.
    static func run(_ hooks: [Spec.Hook], state: ContainerState) throws {
        for hook in hooks {
            // args is the whole argv, argv[0] included: Docker's hooks dispatch on it.
            let argv = hook.args ?? [hook.path]
            let result = try Tool.run(
                hook.path, Array(argv.dropFirst()), input: state.ociJSON, environment: hook.env ?? [], argv0: argv.first,
                timeout: hook.timeout)
            if result.timedOut {
                throw SkiffError(.setupFailed, "hook \(hook.path) did not finish within its timeout of \(hook.timeout ?? 0) s")
            }
            guard result.status == 0 else {
                throw SkiffError(.setupFailed, "hook \(hook.path) failed with exit status \(result.status): \(result.errorOutput)")
            }
        }
    }
}
