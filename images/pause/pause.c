/*
 * podsec pause: the infrastructure ("sandbox") process of a pod.
 *
 * It holds the pod's namespaces open and does nothing else: it sleeps until SIGINT or
 * SIGTERM (exit 0) and, being PID 1 of a shared PID namespace, reaps every zombie it
 * inherits. Built static (gcc -static -Os) so the image is this one file.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t stop_signal;

static void on_stop(int sig) { stop_signal = sig; }

static void on_child(int sig)
{
    int saved = errno;
    (void)sig;
    while (waitpid(-1, NULL, WNOHANG) > 0)
        ;
    errno = saved;
}

static int handle(int sig, void (*fn)(int))
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = fn;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = sig == SIGCHLD ? SA_NOCLDSTOP | SA_RESTART : 0;
    return sigaction(sig, &sa, NULL);
}

int main(int argc, char **argv)
{
    if (argc > 1 && (strcmp(argv[1], "-v") == 0 || strcmp(argv[1], "--version") == 0)) {
        puts("podsec pause 1.0");
        return 0;
    }
    if (getpid() != 1)
        fputs("pause: warning: not running as PID 1\n", stderr);
    if (handle(SIGINT, on_stop) || handle(SIGTERM, on_stop) || handle(SIGCHLD, on_child)) {
        perror("pause: sigaction");
        return 1;
    }
    while (!stop_signal)
        pause();
    fprintf(stderr, "pause: signal %d received, exiting\n", (int)stop_signal);
    return 0;
}
