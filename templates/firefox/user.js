// pexi's hermetic Firefox profile. The guest has no network: every request Firefox makes
// is intercepted by pexi-agent and carried to the host's policy proxy. These preferences
// stop Firefox from trying to talk to anything on its own (updates, telemetry, studies,
// prefetching, DNS) and switch off the features interception cannot see (service and
// shared workers, WebRTC, HTTP/3).

// Updates, telemetry, studies, crash reports, first-run pages.
user_pref("app.update.enabled", false);
user_pref("app.update.auto", false);
user_pref("app.normandy.enabled", false);
user_pref("app.shield.optoutstudies.enabled", false);
user_pref("datareporting.healthreport.uploadEnabled", false);
user_pref("datareporting.policy.dataSubmissionEnabled", false);
user_pref("toolkit.telemetry.enabled", false);
user_pref("toolkit.telemetry.unified", false);
user_pref("toolkit.telemetry.server", "");
user_pref("browser.crashReports.unsubmittedCheck.autoSubmit2", false);
user_pref("browser.shell.checkDefaultBrowser", false);
user_pref("browser.startup.homepage_override.mstone", "ignore");
user_pref("browser.aboutwelcome.enabled", false);
user_pref("browser.newtabpage.enabled", false);
user_pref("browser.startup.page", 0);
user_pref("extensions.update.enabled", false);
user_pref("extensions.getAddons.cache.enabled", false);
user_pref("extensions.systemAddon.update.enabled", false);
user_pref("services.settings.server", "");
user_pref("messaging-system.rsexperimentloader.enabled", false);

// Connectivity probes, safe browsing, certificate revocation fetches.
user_pref("network.captive-portal-service.enabled", false);
user_pref("network.connectivity-service.enabled", false);
user_pref("browser.safebrowsing.malware.enabled", false);
user_pref("browser.safebrowsing.phishing.enabled", false);
user_pref("browser.safebrowsing.downloads.enabled", false);
user_pref("browser.safebrowsing.downloads.remote.enabled", false);
user_pref("security.OCSP.enabled", 0);
user_pref("security.remote_settings.crlite_filters.enabled", false);

// No speculative traffic: DNS prefetch, link prefetch, predictor, preconnect, early hints.
user_pref("network.dns.disablePrefetch", true);
user_pref("network.dns.disablePrefetchFromHTTPS", true);
user_pref("network.prefetch-next", false);
user_pref("network.predictor.enabled", false);
user_pref("network.predictor.enable-prefetch", false);
user_pref("network.preconnect", false);
user_pref("network.http.speculative-parallel-limit", 0);
user_pref("browser.urlbar.speculativeConnect.enabled", false);
user_pref("browser.places.speculativeConnect.enabled", false);
user_pref("network.early-hints.enabled", false);
user_pref("network.early-hints.preconnect.enabled", false);

// No DNS over HTTPS, no HTTP/3 or alternative services.
user_pref("network.trr.mode", 5);
user_pref("network.http.http3.enable", false);
user_pref("network.http.altsvc.enabled", false);

// Features interception cannot mediate: service workers, WebRTC, beacons to the network.
user_pref("dom.serviceWorkers.enabled", false);
user_pref("media.peerconnection.enabled", false);
user_pref("media.navigator.enabled", false);
user_pref("beacon.enabled", false);
user_pref("dom.push.enabled", false);
user_pref("geo.enabled", false);

// Defence in depth: should anything escape interception, it is sent to a SOCKS proxy at a
// loopback port where nothing listens, and names are left to that proxy to resolve, so
// Firefox itself never looks up a name (the WebSocket handshake would otherwise resolve
// its host before failing).
user_pref("network.proxy.type", 1);
user_pref("network.proxy.socks", "127.0.0.1");
user_pref("network.proxy.socks_port", 9);
user_pref("network.proxy.socks_version", 5);
user_pref("network.proxy.socks_remote_dns", true);
user_pref("network.proxy.no_proxies_on", "");
user_pref("network.proxy.allow_hijacking_localhost", true);
user_pref("network.proxy.failover_direct", false);
