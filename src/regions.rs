//! Built-in coordinates of the cloud regions LLM providers serve from.
//!
//! These are metro-level approximations, meant as priors for estimating network distance (and so latency)
//! from a Cloudflare edge location to a provider region. They are not exact data-centre sites: providers do
//! not publish those, and a region usually spans several buildings tens of kilometres apart. Each entry is
//! the metro the region is in, rounded to two decimals (about a kilometre), which is far finer than the
//! latency differences it is used to predict.
//!
//! Sources, roughly: the city each provider names for the region; for Azure, the coordinates Azure itself
//! publishes for the region, except where those are a country or state centroid rather than the metro
//! (France Central, UK South, UK West), where the named metro is used instead. AWS does not say where the
//! GovCloud regions are beyond "US-West" (the Pacific Northwest) and "US-East" (Ohio); they are placed with
//! us-west-2 and us-east-2.
//!
//! Providers that serve from one worldwide endpoint (a `global` area) have no entry here; callers handle
//! them.

use Continent::{Africa, Asia, Europe, MiddleEast, NorthAmerica, Oceania, SouthAmerica};

/// Mean radius of the Earth in kilometres (IUGG).
const EARTH_RADIUS_KM: f64 = 6371.0;

/// A cloud region's approximate location (the metro it is in).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Region {
    /// The region id exactly as its provider spells it, e.g. `us-east-1`, `eastus`, `us-central1`.
    pub id: &'static str,
    /// Latitude in degrees, north positive.
    pub lat: f64,
    /// Longitude in degrees, east positive.
    pub lon: f64,
    pub continent: Continent,
}

/// The broad area a region is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Continent {
    NorthAmerica,
    SouthAmerica,
    Europe,
    Asia,
    Oceania,
    Africa,
    MiddleEast,
}

const fn r(id: &'static str, lat: f64, lon: f64, continent: Continent) -> Region {
    Region {
        id,
        lat,
        lon,
        continent,
    }
}

/// Every region known to Meridian, grouped by provider.
#[rustfmt::skip]
pub static REGIONS: &[Region] = &[
    // AWS (Amazon Bedrock is served from these).
    r("us-east-1",                 38.9,   -77.4, NorthAmerica), // Northern Virginia
    r("us-east-2",                39.96,   -83.0, NorthAmerica), // Ohio (Columbus)
    r("us-west-1",                37.35, -121.96, NorthAmerica), // Northern California (San Jose)
    r("us-west-2",                45.84,  -119.7, NorthAmerica), // Oregon (Boardman)
    r("ca-central-1",              45.5,  -73.57, NorthAmerica), // Montréal
    r("sa-east-1",               -23.55,  -46.63, SouthAmerica), // São Paulo
    r("eu-west-1",                53.35,   -6.26, Europe),       // Dublin
    r("eu-west-2",                51.51,   -0.13, Europe),       // London
    r("eu-west-3",                48.86,    2.35, Europe),       // Paris
    r("eu-central-1",             50.11,    8.68, Europe),       // Frankfurt
    r("eu-central-2",             47.37,    8.54, Europe),       // Zurich
    r("eu-north-1",               59.33,   18.07, Europe),       // Stockholm
    r("eu-south-1",               45.46,    9.19, Europe),       // Milan
    r("eu-south-2",               41.65,   -0.88, Europe),       // Aragón (Zaragoza)
    r("ap-south-1",               19.08,   72.88, Asia),         // Mumbai
    r("ap-south-2",               17.39,   78.49, Asia),         // Hyderabad
    r("ap-northeast-1",           35.68,  139.77, Asia),         // Tokyo
    r("ap-northeast-2",           37.57,  126.98, Asia),         // Seoul
    r("ap-northeast-3",           34.69,   135.5, Asia),         // Osaka
    r("ap-southeast-1",            1.35,  103.82, Asia),         // Singapore
    r("ap-southeast-2",          -33.87,  151.21, Oceania),      // Sydney
    r("ap-southeast-3",            -6.2,  106.85, Asia),         // Jakarta
    r("ap-southeast-4",          -37.81,  144.96, Oceania),      // Melbourne
    r("ap-east-1",                22.32,  114.17, Asia),         // Hong Kong
    r("me-south-1",               26.23,   50.59, MiddleEast),   // Bahrain (Manama)
    r("me-central-1",              25.2,   55.27, MiddleEast),   // UAE (Dubai)
    r("il-central-1",             32.09,   34.78, MiddleEast),   // Tel Aviv
    r("af-south-1",              -33.92,   18.42, Africa),       // Cape Town
    r("us-gov-west-1",            45.84,  -119.7, NorthAmerica), // GovCloud US-West (Pacific Northwest)
    r("us-gov-east-1",            39.96,   -83.0, NorthAmerica), // GovCloud US-East (Ohio)
    // Azure (Azure OpenAI).
    r("eastus",                   37.37,  -79.82, NorthAmerica), // Virginia
    r("eastus2",                  36.67,  -78.39, NorthAmerica), // Virginia (Boydton)
    r("westus",                   37.78, -122.42, NorthAmerica), // California (San Francisco Bay Area)
    r("westus2",                  47.23, -119.85, NorthAmerica), // Washington (Quincy)
    r("westus3",                  33.45, -112.07, NorthAmerica), // Phoenix
    r("centralus",                41.59,  -93.62, NorthAmerica), // Iowa (Des Moines)
    r("northcentralus",           41.88,  -87.63, NorthAmerica), // Chicago
    r("southcentralus",           29.42,   -98.5, NorthAmerica), // San Antonio
    r("canadaeast",               46.82,  -71.22, NorthAmerica), // Québec City
    r("canadacentral",            43.65,  -79.38, NorthAmerica), // Toronto
    r("brazilsouth",             -23.55,  -46.63, SouthAmerica), // São Paulo
    r("northeurope",              53.35,   -6.26, Europe),       // Dublin
    r("westeurope",               52.37,     4.9, Europe),       // Amsterdam
    r("uksouth",                  51.51,   -0.13, Europe),       // London
    r("ukwest",                   51.48,   -3.18, Europe),       // Cardiff
    r("francecentral",            48.86,    2.35, Europe),       // Paris
    r("germanywestcentral",       50.11,    8.68, Europe),       // Frankfurt
    r("swedencentral",            60.67,   17.14, Europe),       // Gävle
    r("switzerlandnorth",         47.45,    8.56, Europe),       // Zurich
    r("norwayeast",               59.91,   10.75, Europe),       // Oslo
    r("polandcentral",            52.23,   21.02, Europe),       // Warsaw
    r("italynorth",               45.47,    9.18, Europe),       // Milan
    r("spaincentral",             40.42,    -3.7, Europe),       // Madrid
    r("australiaeast",           -33.86,  151.21, Oceania),      // Sydney
    r("japaneast",                35.68,  139.77, Asia),         // Tokyo
    r("japanwest",                34.69,   135.5, Asia),         // Osaka
    r("koreacentral",             37.57,  126.98, Asia),         // Seoul
    r("southeastasia",             1.28,  103.83, Asia),         // Singapore
    r("eastasia",                 22.27,  114.19, Asia),         // Hong Kong
    r("southindia",               12.98,   80.16, Asia),         // Chennai
    r("centralindia",             18.58,   73.92, Asia),         // Pune
    r("uaenorth",                 25.27,   55.32, MiddleEast),   // Dubai
    r("qatarcentral",             25.55,   51.44, MiddleEast),   // Doha
    r("southafricanorth",        -25.73,   28.22, Africa),       // Johannesburg
    // Google Cloud (Vertex AI / Gemini).
    r("us-central1",              41.26,  -95.87, NorthAmerica), // Council Bluffs, Iowa
    r("us-east1",                  33.2,  -80.01, NorthAmerica), // Moncks Corner, South Carolina
    r("us-east4",                 39.04,  -77.49, NorthAmerica), // Ashburn, Virginia
    r("us-east5",                 39.96,  -82.99, NorthAmerica), // Columbus, Ohio
    r("us-south1",                32.78,   -96.8, NorthAmerica), // Dallas
    r("us-west1",                 45.59, -121.18, NorthAmerica), // The Dalles, Oregon
    r("us-west4",                 36.17, -115.14, NorthAmerica), // Las Vegas
    r("northamerica-northeast1",   45.5,  -73.57, NorthAmerica), // Montréal
    r("southamerica-east1",      -23.53,  -46.79, SouthAmerica), // Osasco (São Paulo)
    r("europe-west1",             50.47,    3.81, Europe),       // St. Ghislain, Belgium
    r("europe-west2",             51.51,   -0.13, Europe),       // London
    r("europe-west3",             50.11,    8.68, Europe),       // Frankfurt
    r("europe-west4",             53.44,    6.83, Europe),       // Eemshaven, Netherlands
    r("europe-west6",             47.37,    8.54, Europe),       // Zurich
    r("europe-west8",             45.46,    9.19, Europe),       // Milan
    r("europe-west9",             48.86,    2.35, Europe),       // Paris
    r("europe-north1",            60.57,   27.19, Europe),       // Hamina, Finland
    r("europe-central2",          52.23,   21.01, Europe),       // Warsaw
    r("europe-southwest1",        40.42,    -3.7, Europe),       // Madrid
    r("asia-east1",               24.08,  120.54, Asia),         // Changhua County, Taiwan
    r("asia-east2",               22.32,  114.17, Asia),         // Hong Kong
    r("asia-northeast1",          35.68,  139.77, Asia),         // Tokyo
    r("asia-northeast3",          37.57,  126.98, Asia),         // Seoul
    r("asia-south1",              19.08,   72.88, Asia),         // Mumbai
    r("asia-southeast1",           1.34,  103.71, Asia),         // Jurong West, Singapore
    r("australia-southeast1",    -33.87,  151.21, Oceania),      // Sydney
    r("me-central1",              25.29,   51.53, MiddleEast),   // Doha
    r("me-west1",                 32.09,   34.78, MiddleEast),   // Tel Aviv
];

/// Looks up a region id, case-insensitively.
pub fn lookup(id: &str) -> Option<&'static Region> {
    REGIONS
        .iter()
        .find(|region| region.id.eq_ignore_ascii_case(id))
}

/// Great-circle distance in kilometres (haversine, mean Earth radius 6371 km).
///
/// Arguments are in degrees, north and east positive.
pub fn distance_km(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let (phi1, phi2) = (lat1.to_radians(), lat2.to_radians());
    let half_dphi = (lat2 - lat1).to_radians() / 2.0;
    let half_dlambda = (lon2 - lon1).to_radians() / 2.0;
    let h = half_dphi.sin().powi(2) + phi1.cos() * phi2.cos() * half_dlambda.sin().powi(2);
    // Rounding can push `h` a hair past 1 for antipodal points; asin would then be NaN.
    2.0 * EARTH_RADIUS_KM * h.sqrt().min(1.0).asin()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    const AWS: &[&str] = &[
        "us-east-1",
        "us-east-2",
        "us-west-1",
        "us-west-2",
        "ca-central-1",
        "sa-east-1",
        "eu-west-1",
        "eu-west-2",
        "eu-west-3",
        "eu-central-1",
        "eu-central-2",
        "eu-north-1",
        "eu-south-1",
        "eu-south-2",
        "ap-south-1",
        "ap-south-2",
        "ap-northeast-1",
        "ap-northeast-2",
        "ap-northeast-3",
        "ap-southeast-1",
        "ap-southeast-2",
        "ap-southeast-3",
        "ap-southeast-4",
        "ap-east-1",
        "me-south-1",
        "me-central-1",
        "il-central-1",
        "af-south-1",
        "us-gov-west-1",
        "us-gov-east-1",
    ];

    const AZURE: &[&str] = &[
        "eastus",
        "eastus2",
        "westus",
        "westus2",
        "westus3",
        "centralus",
        "northcentralus",
        "southcentralus",
        "canadaeast",
        "canadacentral",
        "brazilsouth",
        "northeurope",
        "westeurope",
        "uksouth",
        "ukwest",
        "francecentral",
        "germanywestcentral",
        "swedencentral",
        "switzerlandnorth",
        "norwayeast",
        "polandcentral",
        "italynorth",
        "spaincentral",
        "australiaeast",
        "japaneast",
        "japanwest",
        "koreacentral",
        "southeastasia",
        "eastasia",
        "southindia",
        "centralindia",
        "uaenorth",
        "qatarcentral",
        "southafricanorth",
    ];

    const GCP: &[&str] = &[
        "us-central1",
        "us-east1",
        "us-east4",
        "us-east5",
        "us-south1",
        "us-west1",
        "us-west4",
        "northamerica-northeast1",
        "southamerica-east1",
        "europe-west1",
        "europe-west2",
        "europe-west3",
        "europe-west4",
        "europe-west6",
        "europe-west8",
        "europe-west9",
        "europe-north1",
        "europe-central2",
        "europe-southwest1",
        "asia-east1",
        "asia-east2",
        "asia-northeast1",
        "asia-northeast3",
        "asia-south1",
        "asia-southeast1",
        "australia-southeast1",
        "me-central1",
        "me-west1",
    ];

    fn region(id: &str) -> &'static Region {
        lookup(id).unwrap_or_else(|| panic!("{id} missing"))
    }

    fn between(a: &str, b: &str) -> f64 {
        let (a, b) = (region(a), region(b));
        distance_km(a.lat, a.lon, b.lat, b.lon)
    }

    fn assert_close(actual: f64, expected: f64, tolerance: f64) {
        assert!(
            (actual - expected).abs() <= tolerance,
            "{actual} km is not within {tolerance} km of {expected} km"
        );
    }

    #[test]
    fn looks_up_known_ids() {
        let r = region("us-east-1");
        assert_eq!(r.id, "us-east-1");
        assert_eq!(r.continent, Continent::NorthAmerica);
        assert_eq!(region("swedencentral").continent, Continent::Europe);
        assert_eq!(region("us-central1").continent, Continent::NorthAmerica);
        assert_eq!(region("ap-southeast-2").continent, Continent::Oceania);
        assert_eq!(region("me-central1").continent, Continent::MiddleEast);
        assert_eq!(region("af-south-1").continent, Continent::Africa);
        assert_eq!(region("brazilsouth").continent, Continent::SouthAmerica);
        assert_eq!(region("asia-south1").continent, Continent::Asia);
    }

    #[test]
    fn lookup_is_case_insensitive() {
        assert_eq!(lookup("US-EAST-1"), lookup("us-east-1"));
        assert_eq!(lookup("EastUS2").map(|r| r.id), Some("eastus2"));
        assert_eq!(lookup("Europe-West4").map(|r| r.id), Some("europe-west4"));
    }

    #[test]
    fn unknown_ids_are_none() {
        assert_eq!(lookup(""), None);
        assert_eq!(lookup("global"), None);
        assert_eq!(lookup("mars-north-1"), None);
        assert_eq!(lookup("us-east-1 "), None);
        assert_eq!(lookup("us-east"), None);
    }

    #[test]
    fn every_listed_provider_region_is_present() {
        for id in AWS.iter().chain(AZURE).chain(GCP) {
            assert_eq!(
                region(id).id,
                *id,
                "ids are stored exactly as providers spell them"
            );
        }
        assert_eq!(REGIONS.len(), AWS.len() + AZURE.len() + GCP.len());
    }

    #[test]
    fn ids_are_unique_and_lowercase() {
        let mut seen = HashSet::new();
        for r in REGIONS {
            assert!(
                seen.insert(r.id.to_ascii_lowercase()),
                "duplicate id {}",
                r.id
            );
            assert_eq!(r.id, r.id.to_ascii_lowercase());
            assert!(!r.id.is_empty() && !r.id.contains(char::is_whitespace));
            assert!(std::ptr::eq(region(r.id), r));
        }
    }

    #[test]
    fn coordinates_are_in_range() {
        for r in REGIONS {
            assert!(
                r.lat.is_finite() && (-90.0..=90.0).contains(&r.lat),
                "{}",
                r.id
            );
            assert!(
                r.lon.is_finite() && (-180.0..=180.0).contains(&r.lon),
                "{}",
                r.id
            );
            // Nothing here sits on null island; a zero is a typo.
            assert!(r.lat != 0.0 && r.lon != 0.0, "{}", r.id);
        }
    }

    #[test]
    fn coordinates_agree_with_continent() {
        for r in REGIONS {
            let (lat, lon) = (r.lat, r.lon);
            let ok = match r.continent {
                Continent::NorthAmerica => lat > 15.0 && lon < -50.0,
                Continent::SouthAmerica => lat < 15.0 && lon < -30.0,
                Continent::Europe => lat > 35.0 && (-25.0..45.0).contains(&lon),
                Continent::Asia => (-11.0..55.0).contains(&lat) && (60.0..150.0).contains(&lon),
                Continent::Oceania => lat < -10.0 && lon > 110.0,
                Continent::Africa => lat < 37.0 && (-20.0..52.0).contains(&lon),
                Continent::MiddleEast => (12.0..42.0).contains(&lat) && (34.0..60.0).contains(&lon),
            };
            assert!(ok, "{} at {lat},{lon} is not in {:?}", r.id, r.continent);
        }
    }

    #[test]
    fn table_is_large_enough() {
        assert!(REGIONS.len() >= 90, "only {} regions", REGIONS.len());
    }

    #[test]
    fn known_distances() {
        // London to New York is about 5570 km.
        let london_ny = distance_km(51.5074, -0.1278, 40.7128, -74.0060);
        assert_close(london_ny, 5570.0, 5570.0 * 0.01);
        // Same point.
        assert!(distance_km(50.11, 8.68, 50.11, 8.68).abs() < 1e-9);
        // Antipodes are half the circumference apart: pi * 6371 km.
        let half = std::f64::consts::PI * EARTH_RADIUS_KM;
        assert_close(half, 20015.0, 1.0);
        assert_close(distance_km(0.0, 0.0, 0.0, 180.0), half, 1e-6);
        assert_close(distance_km(90.0, 0.0, -90.0, 0.0), half, 1e-6);
        assert_close(distance_km(45.0, 10.0, -45.0, -170.0), half, 1e-6);
        // One degree of latitude is about 111.2 km.
        assert_close(distance_km(10.0, 20.0, 11.0, 20.0), 111.19, 0.01);
        // Crossing the antimeridian takes the short way round.
        assert_close(distance_km(0.0, 179.5, 0.0, -179.5), 111.19, 0.01);
    }

    #[test]
    fn distance_is_symmetric_and_non_negative() {
        for a in REGIONS {
            for b in REGIONS {
                let ab = distance_km(a.lat, a.lon, b.lat, b.lon);
                let ba = distance_km(b.lat, b.lon, a.lat, a.lon);
                assert!(ab.is_finite() && ab >= 0.0);
                assert!((ab - ba).abs() < 1e-6);
                assert!(ab <= std::f64::consts::PI * EARTH_RADIUS_KM + 1e-6);
            }
        }
    }

    #[test]
    fn region_distances_are_sensible() {
        assert!(between("us-east-1", "eastus") < between("us-east-1", "eu-west-1"));
        assert!(between("us-east-1", "us-east4") < 50.0);
        // The same city served by different providers.
        assert!(between("eu-central-1", "europe-west3") < 5.0);
        assert!(between("eu-central-1", "germanywestcentral") < 5.0);
        assert!(between("ap-northeast-1", "japaneast") < 5.0);
        assert!(between("ap-southeast-1", "southeastasia") < 20.0);
        // Frankfurt to London is about 640 km; Frankfurt to Sydney about 16,500 km.
        assert_close(between("eu-central-1", "eu-west-2"), 640.0, 20.0);
        assert_close(between("eu-central-1", "ap-southeast-2"), 16_500.0, 200.0);
    }
}
