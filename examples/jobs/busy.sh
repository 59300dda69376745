# Takes a second, and says which provider's work folder it ran in.
echo "job $1 ran in ${PWD#*/demo-run/}"
sleep 1
