// libcurl's declarations only: berth loads the library itself with dlopen
// the first time it makes a request (see Sources/CBerthHTTP/http.c).
#include <curl/curl.h>
