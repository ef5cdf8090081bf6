#pragma once
// One server process: the apps, the pool, the loop, the io threads. It runs
// alone (no supervisor), or as one of a supervisor's workers.
#include "bridge/config/options.hpp"

#include <memory>

namespace trestle::sd { class notifier; }

namespace trestle::supervisor {

// The imported apps, with Python running and the GIL held by the thread
// that loaded them. Opaque outside worker.cpp.
struct loaded_apps;
struct loaded_apps_deleter { void operator()(loaded_apps*) const; };
using apps_ptr = std::unique_ptr<loaded_apps, loaded_apps_deleter>;

// Starts Python and imports every app of `opt`. An app that cannot be
// imported ends the process (exit 1, the traceback on stderr); a bad
// option, exit 2.
apps_ptr load_apps(const options& opt);

struct serve_role {
    bool supervised = false;   // a supervisor's worker: see net::server::set_supervised
    int link_fd = -1;          // its end of the link to the supervisor (worker_link.hpp)
};

// Serves `opt` until stopped (SIGTERM/SIGINT: a drain; SIGQUIT: at once)
// and returns the exit status. `apps` was preloaded (--preload), or is null
// and the apps are loaded here. `notify` is systemd's notify socket (a
// worker gets a disabled one: its supervisor talks to systemd).
int serve(options& opt, apps_ptr apps, sd::notifier& notify, const serve_role& role);

// While the apps load and after the drain (outside net::server::run): QUIT
// stops at once; HUP, USR1, USR2, TTIN and TTOU do nothing instead of
// ending the process.
void quiet_signals_outside_run();

} // namespace trestle::supervisor
