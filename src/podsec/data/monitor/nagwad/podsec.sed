# podsec: nagwad rules (sed -n) for the podsec-inotify programs' syslog lines.
#   <tag>[pid]: Crash|Fatal|Critical|High|Middle: <msg>  ->  <tag>:CRITICAL:<tag>(<Level>) <msg>
#   <tag>[pid]: Warning: <msg>                           ->  <tag>:WARNING:<tag>(Warning) <msg>
# Low and Debug messages are not forwarded.
s/^.*\(podsec-inotify-check-[a-z-]*\)\[[0-9]*\]: \(Crash\|Fatal\|Critical\|High\|Middle\): \(.*\)$/\1:CRITICAL:\1(\2) \3/p
s/^.*\(podsec-inotify-check-[a-z-]*\)\[[0-9]*\]: Warning: \(.*\)$/\1:WARNING:\1(Warning) \2/p
s/^.*\(podsec-inotify-build-[a-z-]*\)\[[0-9]*\]: \(Crash\|Fatal\|Critical\|High\|Middle\): \(.*\)$/\1:CRITICAL:\1(\2) \3/p
